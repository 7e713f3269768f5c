import pytest
import torch

from raysearch.config import TrainConfig
from raysearch.data.protocols import eval_task, make_split
from raysearch.errors import DataError
from raysearch.evaluation.scoring import evaluate
from raysearch.train.checkpoint import (CHECKPOINT_FILE, baseline_checkpoint, load_checkpoint, model_from_checkpoint,
                                        save_checkpoint)
from raysearch.train.fit import fit
from raysearch.train.fusion_gcn import model_scorer
from raysearch.train.inputs import ModelInputs

CONFIG = TrainConfig.from_dict({"embedding_dim": 8, "num_layers": 2, "batch_size": 16, "epochs": 3, "topk": [3],
                                "metric": "ndcg@3", "contrastive_pairs": 16})


@pytest.fixture
def saved(tiny, tmp_path):
    split = make_split(tiny, "warm", 0)
    result = fit(CONFIG, tiny, split)
    save_checkpoint(result.checkpoint, tmp_path / CHECKPOINT_FILE)
    return result, split, tmp_path / CHECKPOINT_FILE


def test_checkpoint_round_trip_rebuilds_the_model_without_the_dataset(tiny, saved):
    result, split, path = saved
    loaded = load_checkpoint(path)
    assert loaded["config"] == CONFIG.to_dict() and loaded["epoch"] == result.best_epoch
    assert loaded["user_fields"][0]["vocab"] == ["<unk>", "even", "odd"] and loaded["optimizer"] is not None
    model = model_from_checkpoint(loaded)
    inputs = ModelInputs.build(tiny, loaded["train"].numpy())
    again = evaluate(model_scorer(model, inputs), eval_task(split, "valid"), tiny.num_items, (3,), 4)
    assert again["ndcg@3"] == pytest.approx(result.valid["ndcg@3"], abs=1e-6)
    assert TrainConfig.from_dict(loaded["config"]) == CONFIG


def test_damaged_or_foreign_checkpoints_are_refused(saved, tmp_path):
    _, _, path = saved
    checkpoint = torch.load(path, weights_only=True)
    torch.save({**checkpoint, "train": torch.zeros(3, 2)}, tmp_path / "floats.pt")
    with pytest.raises(DataError, match="floats.pt: damaged raysearch checkpoint: train missing or of the wrong type"):
        load_checkpoint(tmp_path / "floats.pt")
    torch.save({"format": "raysearch-checkpoint/1"}, tmp_path / "old.pt")
    with pytest.raises(DataError, match="old.pt: not a raysearch checkpoint \\(expected format 'raysearch-checkpoint/2'\\)"):
        load_checkpoint(tmp_path / "old.pt")
    with pytest.raises(DataError, match="missing.pt: checkpoint file not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_baseline_checkpoints_are_plain_dicts(tmp_path):
    config = TrainConfig.from_dict({"model": "popularity"})
    checkpoint = baseline_checkpoint(config, 1, {"valid_ndcg@10": 0.5}, {"counts": torch.ones(3)})
    save_checkpoint(checkpoint, tmp_path / "baseline.pt")
    loaded = torch.load(tmp_path / "baseline.pt", weights_only=True)
    assert loaded["format"] == "raysearch-baseline/1" and TrainConfig.from_dict(loaded["config"]) == config
    assert loaded["metrics"] == {"valid_ndcg@10": 0.5} and torch.equal(loaded["state_dict"]["counts"], torch.ones(3))
