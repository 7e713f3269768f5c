"""The run folder of `raysearch train`: the config's sources and precedence, the files, any model."""

import json

import pandas as pd
import pytest
import torch

from raysearch.config import TrainConfig
from raysearch.data.protocols import make_split
from raysearch.data.split_files import read_split
from raysearch.errors import ConfigError, RaysearchError
from raysearch.train.run_folder import new_run_folder, run_config, train_to_folder


def test_precedence_defaults_config_file_split_file_assignments(tmp_path):
    (tmp_path / "run.yaml").write_text("epochs: 5\nsplit: warm\nnum_layers: 1\npatience: 4\n")
    (tmp_path / "split.json").write_text(json.dumps({"dataset": "ml-1m", "protocol": "user_cold",
                                                      "cold_users": {"valid": [1], "test": [2]}}))
    config = run_config(tmp_path / "run.yaml", tmp_path / "split.json", ["split=item_cold", "epochs=7"])
    assert (config.epochs, config.patience, config.split, config.dataset) == (7, 4, "item_cold", "ml-1m")
    assert config.settings.num_layers == 1 and config.split_file == str(tmp_path / "split.json")
    assert run_config(None, None, ["model=autorec"]) == TrainConfig.from_dict({"model": "autorec"})


def test_bad_sources_name_themselves(tmp_path):
    (tmp_path / "run.yaml").write_text("epochz: 5\n")
    with pytest.raises(ConfigError, match="run.yaml: unknown key 'epochz'"):
        run_config(tmp_path / "run.yaml", None, [])
    with pytest.raises(ConfigError, match="--set: unknown key 'mlp_dims' .* for model 'fusion_gcn'"):
        run_config(None, None, ["mlp_dims=[8]"])


def test_the_folder_must_be_new(tmp_path):
    assert new_run_folder(tmp_path / "new", TrainConfig()) == tmp_path / "new"
    assert new_run_folder(None, TrainConfig(split="user_cold")).name.startswith("ml-100k-user_cold-")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "config.yaml").write_text("")
    with pytest.raises(RaysearchError, match="used: output folder already holds files"):
        new_run_folder(tmp_path / "used", TrainConfig())


@pytest.mark.parametrize("model", ["fusion_gcn", "deepfm"])
def test_every_model_writes_the_run_files(tiny, tmp_path, model):
    config = TrainConfig.from_dict({"model": model, "epochs": 2, "embedding_dim": 8, "batch_size": 64,
                                    "topk": [5], "metric": "ndcg@5"})
    split = make_split(tiny, "warm", 0)
    result = train_to_folder(config, tiny, split, tmp_path / "run", tmp_path / "extra" / "metrics.json")
    out = tmp_path / "run"
    assert {p.name for p in out.iterdir()} == {"config.yaml", "split.json", "checkpoint.pt", "history.csv",
                                               "metrics.json", "tensorboard"}
    assert TrainConfig.from_yaml(out / "config.yaml") == config
    assert read_split(out / "split.json", tiny).train.tolist() == split.train.tolist()
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == result.best_epoch
    assert len(pd.read_csv(out / "history.csv")) == len(result.history) == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads((tmp_path / "extra" / "metrics.json").read_text())
    assert metrics["best_epoch"] == result.best_epoch and metrics["test"]["ndcg@5"] == result.test["ndcg@5"]
