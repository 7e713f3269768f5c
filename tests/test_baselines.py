"""Every model trains on a small two-taste graph and ranks better than random, through one evaluation path."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from raysearch import comparison, recommenders
from raysearch.comparison import Job, MODEL_DEFAULTS
from raysearch.config import TrainConfig
from raysearch.errors import ConfigError
from raysearch.evaluation import evaluate
from raysearch.splits import eval_task, make_split
from tests.conftest import tiny_dataset

SMALL = {"embedding_dim": 8, "batch_size": 64, "epochs": 40, "patience": 10, "topk": [5], "metric": "ndcg@5",
         "eval_batch_users": 16, "text_buckets": 16, "mlp_dims": [16], "num_trees": 50, "num_leaves": 4}
ATTRIBUTE_AWARE = ("fusion_gcn", "deepfm", "lightgbm")


@pytest.fixture(scope="module")
def taste():
    return tiny_dataset(num_users=40, num_items=30, skew=0.8)


def small_config(model: str, split: str) -> TrainConfig:
    values = {**MODEL_DEFAULTS[model], **SMALL, "model": model, "split": split, "seed": 3}
    values["learning_rate"] = 0.05 if model != "lightgbm" else 0.2
    values["embedding_dim"] = 16 if model == "autorec" else 8
    values["batch_size"] = 8 if model == "autorec" else 64
    return TrainConfig.from_dict(values)


def random_ndcg(dataset, split, repeats: int = 64) -> float:
    task = eval_task(split, "test")
    values = []
    for r in range(repeats):
        generator = torch.Generator().manual_seed(r)
        table = torch.rand(dataset.num_users, dataset.num_items, generator=generator)
        values.append(evaluate(lambda u, i: table[u][:, i], task, dataset.num_items, (5,), 16)["ndcg@5"])
    return float(np.mean(values))


@pytest.mark.parametrize("model", list(MODEL_DEFAULTS))
def test_every_model_beats_random_on_warm(taste, model):
    config = small_config(model, "warm")
    split = make_split(taste, "warm", config.seed)
    fitted = recommenders.train(config, taste, split)
    test = evaluate(fitted.scorer, eval_task(split, "test"), taste.num_items, (5,), 16)
    assert test["ndcg@5"] > 1.2 * random_ndcg(taste, split)
    assert fitted.checkpoint["state_dict"] and fitted.best_epoch >= 1


@pytest.mark.parametrize("split_name", ["item_cold", "user_cold"])
@pytest.mark.parametrize("model", ATTRIBUTE_AWARE)
def test_attribute_models_beat_random_on_cold_splits(taste, model, split_name):
    config = small_config(model, split_name)
    split = make_split(taste, split_name, config.seed)
    fitted = recommenders.train(config, taste, split)
    test = evaluate(fitted.scorer, eval_task(split, "test"), taste.num_items, (5,), 16)
    assert test["ndcg@5"] > random_ndcg(taste, split)


@pytest.mark.parametrize("model,split,ok", [
    ("mf", "item_cold", False), ("mf", "user_cold", False), ("lightgcn", "item_cold", False),
    ("autorec", "user_cold", False), ("popularity", "item_cold", False), ("popularity", "user_cold", True),
    ("deepfm", "item_cold", True), ("lightgbm", "user_cold", True), ("fusion_gcn", "item_cold", True),
])
def test_id_only_models_refuse_cold_entities(taste, model, split, ok):
    config = small_config(model, split)
    assert recommenders.can_score(config) is ok
    if not ok:
        with pytest.raises(ConfigError, match="needs interactions"):
            recommenders.train(config, taste, make_split(taste, split, 1))
        row, weights = comparison.run_job(Job("models", model, config), None, 1)
        assert row["status"] == "n/a (needs interactions)" and "ndcg@5" not in row and weights == []


def test_ids_only_ablation_cannot_score_cold_items():
    config = TrainConfig(split="item_cold", fusion="none", contrastive_weight=0)
    assert not recommenders.can_score(config)
    assert recommenders.can_score(dataclasses.replace(config, split="warm"))


def test_baseline_pins_and_contradictions():
    assert TrainConfig(model="mf").num_layers == 0 and TrainConfig(model="lightgcn").fusion == "none"
    with pytest.raises(ConfigError, match="fixes num_layers=0"):
        TrainConfig(model="mf", num_layers=2)
    with pytest.raises(ConfigError, match="contrastive_weight=0 with fusion=none"):
        TrainConfig(fusion="none")


def test_every_model_is_scored_by_the_one_evaluation_function(taste, monkeypatch):
    """Validation (early stopping) and test scoring of every model go through ``evaluate``."""
    calls = []
    real = comparison.evaluate

    def spy(scorer, task, *args, **kwargs):
        calls.append(task)
        return real(scorer, task, *args, **kwargs)

    for module in ("raysearch.comparison", "raysearch.baselines.loop", "raysearch.training"):
        monkeypatch.setattr(f"{module}.evaluate", spy)
    for model in MODEL_DEFAULTS:
        config = dataclasses.replace(small_config(model, "warm"), epochs=2)
        before = len(calls)
        row, _ = comparison.score_job(Job("models", model, config), taste, {})
        assert row["status"] == "ok"
        assert len(calls) - before == row["epochs_run"] + 1  # one validation per epoch, one test
