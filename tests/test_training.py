import json

import numpy as np
import pytest
import torch

from raysearch import cli
from raysearch.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from raysearch.config import TrainConfig
from raysearch.errors import DataError, TrainingDiverged
from raysearch.splits import eval_task, make_split
from raysearch.evaluation import evaluate
from raysearch.training import ModelInputs, NegativeSampler, fit, model_scorer

TINY = dict(embedding_dim=8, num_layers=2, batch_size=16, epochs=30, patience=30, learning_rate=0.05,
            topk=(3,), metric="ndcg@3", contrastive_pairs=16)


def test_loss_decreases_and_model_beats_random_on_a_tiny_graph(tiny):
    config = TrainConfig(**TINY)
    split = make_split(tiny, "warm", 0)
    result = fit(config, tiny, split)
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < 0.6 * losses[0]
    # 5 candidate items of the user's parity among 10; a random ranker's Hit@3 is far below 1
    assert result.test["hit@3"] == pytest.approx(1.0)


def test_cold_items_are_ranked_by_attributes(tiny):
    config = TrainConfig(**{**TINY, "id_dropout": 0.5})
    split = make_split(tiny, "item_cold", 1)
    result = fit(config, tiny, split)
    assert result.test["hit@3"] == pytest.approx(1.0)


def test_same_seed_same_metrics(tiny):
    config = TrainConfig(**{**TINY, "epochs": 4})
    split = make_split(tiny, "user_cold", 0)
    first, second = fit(config, tiny, split), fit(config, tiny, split)
    assert first.history == [{**row, "epoch_seconds": a["epoch_seconds"]} for row, a in zip(second.history, first.history)]
    assert first.test == second.test


def test_sampler_never_returns_training_positives(tiny):
    split = make_split(tiny, "warm", 0)
    sampler = NegativeSampler(split.train, np.arange(tiny.num_items), tiny.num_items)
    users = torch.as_tensor(split.train[:, 0]).repeat(20)
    items = sampler.sample(users, torch.Generator().manual_seed(0))
    keys = set((users * tiny.num_items + items).tolist())
    assert not keys & set((split.train[:, 0] * tiny.num_items + split.train[:, 1]).tolist())


def test_checkpoint_round_trip_with_weights_only(tiny, tmp_path):
    config = TrainConfig(**{**TINY, "epochs": 3})
    split = make_split(tiny, "warm", 0)
    result = fit(config, tiny, split)
    save_checkpoint(result.checkpoint, tmp_path / "checkpoint.pt")
    loaded = load_checkpoint(tmp_path / "checkpoint.pt")
    assert loaded["config"] == config.to_dict() and loaded["epoch"] == result.best_epoch
    assert loaded["user_fields"][0]["vocab"] == ["<unk>", "even", "odd"]
    model = model_from_checkpoint(loaded)
    inputs = ModelInputs.build(tiny, loaded["train"].numpy())
    again = evaluate(model_scorer(model, inputs), eval_task(split, "valid"), tiny.num_items, (3,), 4)
    assert again["ndcg@3"] == pytest.approx(result.valid["ndcg@3"], abs=1e-6)


def test_pickle_payloads_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "raysearch-checkpoint/1", "payload": object()}, path)
    with pytest.raises(DataError, match="not a loadable raysearch checkpoint"):
        load_checkpoint(path)


def test_train_cli_writes_outputs(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["train", "--dataset", "ml-100k", "--split", "item_cold", "--data-dir", str(data_root),
                     "--set", "epochs=2", "--set", "contrastive_pairs=256", "--out", str(out),
                     "--metrics-out", str(tmp_path / "m.json"), "--threads", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "epoch   2/2" in printed and "| test |" in printed
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics) == {"best_epoch", "valid", "test"} and 0 < metrics["test"]["hit@10"] <= 1
    assert {p.name for p in out.iterdir()} >= {"config.yaml", "split.json", "checkpoint.pt", "history.csv",
                                               "metrics.json", "tensorboard"}
    assert TrainConfig.from_yaml(out / "config.yaml").epochs == 2
    assert cli.main(["train", "--data-dir", str(data_root), "--out", str(out)]) == 2
    assert "already holds files" in capsys.readouterr().err


def test_train_cli_reports_user_errors(tmp_path, capsys):
    assert cli.main(["train", "--set", "num_layers=many", "--out", str(tmp_path / "x")]) == 2
    assert "key 'num_layers': expected int, got 'many'" in capsys.readouterr().err
    assert cli.main(["train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "y")]) == 2
    assert "dataset ml-100k not found" in capsys.readouterr().err


def test_softmax_loss_with_several_negatives_learns(tiny):
    config = TrainConfig(**{**TINY, "rec_loss": "softmax", "num_negatives": 4})
    result = fit(config, tiny, make_split(tiny, "warm", 0))
    assert result.history[-1]["loss"] < result.history[0]["loss"] and result.test["hit@3"] == pytest.approx(1.0)


def test_a_non_finite_loss_ends_the_run_naming_epoch_and_loss(tiny):
    config = TrainConfig(**{**TINY, "temperature": 1e-300})  # logits / temperature overflow: the InfoNCE loss is NaN
    reported = []
    with pytest.raises(TrainingDiverged, match=r"training diverged at epoch 1: the mean training loss is nan"):
        fit(config, tiny, make_split(tiny, "warm", 0), lambda metrics, checkpoint, improved: reported.append(metrics))
    assert reported == []  # the diverged epoch is neither scored nor reported
