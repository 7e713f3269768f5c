"""The one early-stopping loop (raysearch/train/loop.py), driven by fake epochs and scorers."""

import math

import pytest
import torch

from raysearch.config import TrainConfig
from raysearch.data.protocols import eval_task, make_split
from raysearch.errors import TrainingDiverged
from raysearch.train.loop import EpochLoss, Progress, early_stopping, fit_once, sgd_epoch

CONFIG = TrainConfig.from_dict({"model": "popularity", "epochs": 10, "patience": 2, "topk": [3], "metric": "ndcg@3"})


@pytest.fixture
def split(tiny):
    return make_split(tiny, "warm", 0)


def scorers(tiny, split, pattern: str):
    """One scorer per epoch: ``p`` scores the validation positives 1 (NDCG 1), ``c`` everything alike (0)."""
    positives = eval_task(split, "valid").positives
    perfect = torch.zeros(tiny.num_users, tiny.num_items)
    perfect[positives[:, 0], positives[:, 1]] = 1.0
    tables = {"p": perfect, "c": torch.zeros_like(perfect)}
    return iter([lambda u, i, t=tables[c]: t[u][:, i] for c in pattern])


def run(tiny, split, pattern, losses=None, **kwargs):
    reported, snapshots = [], []
    epochs = iter(scorers(tiny, split, pattern))
    progress = early_stopping(
        CONFIG, tiny, split, lambda: EpochLoss(next(losses) if losses else 1.0, 3), lambda: next(epochs),
        lambda epoch, metrics: snapshots.append(epoch) or {"epoch": epoch},
        lambda metrics, checkpoint, improved: reported.append((metrics["epoch"], improved, checkpoint()["epoch"])),
        **kwargs)
    return progress, reported


def test_patience_stops_after_epochs_without_improvement(tiny, split):
    progress, reported = run(tiny, split, "cpccccc")
    assert (progress.epoch, progress.best_epoch, progress.best_value) == (4, 2, 1.0)
    assert reported == [(1, True, 1), (2, True, 2), (3, False, 3), (4, False, 4)]  # improved: the best; else the epoch's
    assert progress.best == {"epoch": 2} and [row["best_epoch"] for row in progress.history] == [1, 2, 2, 2]
    assert set(progress.history[0]) == {"epoch", "loss", "epoch_seconds", "eval_seconds", "train_steps",
                                        "valid_recall@3", "valid_ndcg@3", "valid_mrr@3", "valid_hit@3", "best_epoch",
                                        "best_value"}
    assert [row["train_steps"] for row in progress.history] == [3, 6, 9, 12]  # optimizer steps so far


def test_a_resumed_run_starts_after_its_epoch_with_its_best(tiny, split):
    progress, reported = run(tiny, split, "cc", progress=Progress(epoch=7, best_epoch=6, best_value=0.5, train_steps=21))
    assert [epoch for epoch, _, _ in reported] == [8] and progress.best is None  # 8 - 6 >= patience 2
    assert progress.history[0]["train_steps"] == 24


def test_a_run_resumed_after_patience_ran_out_runs_no_epoch(tiny, split):
    progress, reported = run(tiny, split, "p", progress=Progress(epoch=8, best_epoch=6, best_value=0.5))
    assert reported == [] and progress.epoch == 8  # a finished trial that --resume runs again changes nothing


def test_a_non_finite_loss_raises_naming_epoch_loss_and_hint_before_reporting(tiny, split):
    with pytest.raises(TrainingDiverged, match=r"^training diverged at epoch 2: the mean training loss is inf "
                                               r"\(lower it\)$"):
        run(tiny, split, "pp", losses=iter([1.0, math.inf]), hint="lower it")


def test_a_run_without_a_best_epoch_is_a_diverged_run(tiny, split):
    progress, _ = run(tiny, split, "", progress=Progress(epoch=CONFIG.epochs))
    with pytest.raises(TrainingDiverged, match="training produced no finite validation ndcg@3 in 0 epochs"):
        progress.best_checkpoint("ndcg@3")


def test_a_model_fitted_once_runs_one_epoch_with_loss_zero(tiny, split):
    table = torch.rand(tiny.num_users, tiny.num_items)
    fitted = fit_once(CONFIG, tiny, split, lambda: ((lambda u, i: table[u][:, i]), {"table": table}))
    assert (fitted.best_epoch, len(fitted.history), fitted.history[0]["loss"]) == (1, 1, 0.0)
    assert fitted.checkpoint["format"] == "raysearch-baseline/1" and fitted.checkpoint["state_dict"]["table"] is table
    assert fitted.checkpoint["metrics"] == fitted.history[0]


def test_sgd_epoch_steps_once_per_batch_and_returns_the_mean_loss():
    weight = torch.nn.Parameter(torch.tensor(1.0))
    model = torch.nn.Module()
    model.weight = weight
    optimizer = torch.optim.SGD([weight], lr=0.5)
    mean, steps = sgd_epoch(model, optimizer, [torch.tensor(1.0), torch.tensor(1.0)], lambda batch: weight * batch)
    assert mean == pytest.approx((1.0 + 0.5) / 2) and steps == 2 and weight.item() == pytest.approx(0.0)
