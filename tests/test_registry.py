"""The model registry: every spec is consistent with its settings and trainer, and the README lists it."""

import dataclasses
import importlib
import inspect
import re

import pytest

from raysearch.config import TrainConfig, key_types
from raysearch.errors import ConfigError
from raysearch.registry import MODELS, SIDES, Settings, model_spec


@pytest.mark.parametrize("name", list(MODELS))
def test_defaults_and_pins_name_keys_of_the_model(name):
    spec = MODELS[name]
    assert spec.name == name and set(spec.defaults) | set(spec.pins) <= set(key_types(name))
    assert set(spec.pins) <= set(spec.settings_keys()) and spec.needs <= set(SIDES)
    config = TrainConfig.from_dict({"model": name})
    assert all(config.to_dict()[k] == v for k, v in {**spec.defaults, **spec.pins}.items())


@pytest.mark.parametrize("name", list(MODELS))
def test_trainer_names_a_function_taking_config_dataset_split_reporter(name):
    module, _, function = MODELS[name].trainer.partition(":")
    trainer = getattr(importlib.import_module(module), function)
    assert list(inspect.signature(trainer).parameters) == ["config", "dataset", "split", "reporter"]


def test_data_parallel_models_train_through_the_fusion_gcn_loop():
    assert {n for n, s in MODELS.items() if s.data_parallel} == {n for n, s in MODELS.items()
                                                                  if s.trainer.startswith("raysearch.train.fusion_gcn:")}


def test_every_settings_field_has_a_comment():
    classes = {spec.settings for spec in MODELS.values()}
    for cls in classes:
        assert issubclass(cls, Settings) and dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
        source = inspect.getsource(cls)
        for field in dataclasses.fields(cls):
            assert re.search(rf"^\s+{field.name}: .+  # \S", source, re.M), f"{cls.__name__}.{field.name}"


def test_unknown_model_lists_the_models():
    with pytest.raises(ConfigError, match="key 'model' = 'knn' must be one of fusion_gcn, mf, lightgcn, deepfm"):
        model_spec("knn")
