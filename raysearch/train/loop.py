"""The one early-stopping epoch loop every model trains through (FusionGCN, in-process or on Ray Train
workers, and every baseline), and what a trained model hands back.

The loop owns the divergence check, the validation scoring, the best-epoch tracking and patience; a
model supplies its epoch (a function returning an :class:`EpochLoss`), its scorer and its checkpoint.
Data-parallel ranks (:class:`~raysearch.train.ranks.Ranks`) each score their share of the validation
users and add up the sums, so every rank reports the same metrics.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, NamedTuple, Protocol

import numpy as np
import torch

from raysearch.config import TrainConfig
from raysearch.data.movielens import Dataset
from raysearch.data.protocols import EvalTask, Split, eval_tasks
from raysearch.errors import TrainingDiverged
from raysearch.evaluation.scoring import Scorer, by_part, ranking_totals
from raysearch.train.checkpoint import baseline_checkpoint
from raysearch.train.optimizers import Optimizer
from raysearch.train.ranks import Ranks

USERS = "users"  # the count :func:`validate` adds up with the metric sums


class Reporter(Protocol):
    """Receives each epoch's metrics; ``checkpoint()`` builds the checkpoint to keep on demand."""

    def __call__(self, metrics: dict[str, float], checkpoint: Callable[[], dict], improved: bool) -> None: ...


class EpochLoss(NamedTuple):
    """What one training epoch hands the loop: its mean loss and its optimizer steps."""

    loss: float
    steps: int


@dataclass
class Progress:
    """Where the loop stands: every epoch's metrics and the best epoch so far."""

    epoch: int = 0  # the last epoch run (a resumed run starts after its checkpoint's)
    best_epoch: int = 0
    best_value: float = -math.inf
    train_steps: int = 0  # optimizer steps so far, the resumed run's included
    history: list[dict[str, float]] = field(default_factory=list)  # one row of metrics per epoch run here
    best: dict | None = None  # checkpoint of the best epoch run here (None if none improved)

    def best_checkpoint(self, metric: str) -> dict:
        """The best epoch's checkpoint; a run with none (no finite validation metric) ended as diverged."""
        if self.best is None:
            raise TrainingDiverged(f"training produced no finite validation {metric} in {len(self.history)} epochs")
        return self.best


@dataclass
class Fitted:
    """A trained model at its best validation epoch."""

    scorer: Scorer  # users [B], items [C] -> scores [B, C]
    best_epoch: int
    history: list[dict[str, float]]  # one row of metrics per epoch run
    checkpoint: dict  # plain dict of the best epoch (weights_only-loadable)
    fusion_weights: dict[str, np.ndarray] = field(default_factory=dict)  # side -> [entities, fields]


def early_stopping(config: TrainConfig, dataset: Dataset, split: Split, train_epoch: Callable[[], EpochLoss],
                   scorer: Callable[[], Scorer], snapshot: Callable[[int, dict], dict],
                   reporter: Reporter | None = None, *, hint: str = "try a lower learning_rate",
                   progress: Progress | None = None, epochs: int | None = None, ranks: Ranks = Ranks()) -> Progress:
    """Run epochs ``progress.epoch`` + 1 .. ``epochs`` (default ``config.epochs``) until ``config.patience``
    epochs pass without a better validation ``config.metric``.

    Each epoch: ``train_epoch()`` (its loss averaged over the ``ranks``); a non-finite loss raises
    :class:`TrainingDiverged` naming the epoch, the loss and ``hint`` before anything is reported; then
    ``scorer()`` is scored on the validation part (each rank its share of the users, the sums added up),
    ``reporter`` gets the metrics (``epoch_seconds`` training, ``eval_seconds`` validation, ``train_steps``
    so far, ``best_value`` the best validation metric so far) and ``snapshot(epoch, metrics)`` builds a
    checkpoint (kept in ``progress.best`` when the epoch improved). ``progress`` continues a resumed run.
    """
    progress = progress or Progress()
    tasks = eval_tasks(split, "valid", dataset.num_items)
    if progress.epoch - progress.best_epoch >= config.patience:  # resumed after its last epoch
        return progress
    for epoch in range(progress.epoch + 1, (epochs or config.epochs) + 1):
        started = time.perf_counter()
        loss, steps = train_epoch()
        loss = ranks.all_sum({"loss": loss})["loss"] / ranks.size
        if not math.isfinite(loss):
            raise TrainingDiverged(f"training diverged at epoch {epoch}: the mean training loss is {loss} ({hint})")
        trained = time.perf_counter()
        progress.epoch, progress.train_steps = epoch, progress.train_steps + steps
        valid = validate(config, dataset, tasks, scorer(), ranks)
        improved = valid[config.metric] > progress.best_value
        if improved:
            progress.best_epoch, progress.best_value = epoch, valid[config.metric]
        metrics = {"epoch": epoch, "loss": loss, "epoch_seconds": trained - started,
                   "eval_seconds": time.perf_counter() - trained, "train_steps": progress.train_steps,
                   **{f"valid_{k}": v for k, v in valid.items()},
                   "best_epoch": progress.best_epoch, "best_value": progress.best_value}
        progress.history.append(metrics)
        current = lambda: snapshot(epoch, metrics)  # noqa: E731
        if improved:
            progress.best = current()
        if reporter is not None:
            reporter(metrics, (lambda: progress.best) if improved else current, improved)
        if epoch - progress.best_epoch >= config.patience:
            break
    return progress


def validate(config: TrainConfig, dataset: Dataset, tasks: dict[str, EvalTask], scorer: Scorer,
             ranks: Ranks) -> dict[str, float]:
    """Validation metrics of each task (:func:`~raysearch.evaluation.scoring.by_part`) over its users: this rank
    scores every ``ranks.size``-th one, sums are added up."""

    def score(task: EvalTask) -> dict[str, float]:
        part = dataclasses.replace(task, users=task.users[ranks.rank::ranks.size])
        sums = ranks.all_sum({**ranking_totals(scorer, part, dataset.num_items, config.topk, config.eval_batch_users),
                              USERS: len(part.users)})
        users = sums.pop(USERS)
        return {k: v / users for k, v in sums.items()}

    return by_part(tasks, score)


def sgd_epoch(model: torch.nn.Module, optimizer: Optimizer, batches: Iterable[torch.Tensor],
              loss: Callable[[torch.Tensor], torch.Tensor], scaler: torch.amp.GradScaler | None = None) -> EpochLoss:
    """One optimizer step per batch on ``loss(batch)`` (scaled by ``scaler`` for fp16); the mean loss."""
    scaler = scaler or torch.amp.GradScaler("cpu", enabled=False)
    model.train()
    total, steps = 0.0, 0
    for batch in batches:
        value = loss(batch)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(value).backward()
        scaler.step(optimizer)
        scaler.update()
        total, steps = total + value.item(), steps + 1
    return EpochLoss(total / max(steps, 1), steps)


def fit_epochs(config: TrainConfig, dataset: Dataset, split: Split, model: torch.nn.Module,
               train_epoch: Callable[[], EpochLoss], scorer: Callable[[], Scorer],
               reporter: Reporter | None = None) -> Fitted:
    """A PyTorch baseline through :func:`early_stopping`: its best epoch's weights restored, and their scorer."""
    def snapshot(epoch: int, metrics: dict) -> dict:
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return baseline_checkpoint(config, epoch, metrics, state)

    progress = early_stopping(config, dataset, split, train_epoch, scorer, snapshot, reporter)
    best = progress.best_checkpoint(config.metric)
    model.load_state_dict(best["state_dict"])
    return Fitted(scorer(), progress.best_epoch, progress.history, best)


def fit_once(config: TrainConfig, dataset: Dataset, split: Split, fit: Callable[[], tuple[Scorer, dict]],
             reporter: Reporter | None = None) -> Fitted:
    """A model fitted in one go (``fit()`` -> its scorer and state): one epoch of :func:`early_stopping`, loss 0."""
    fitted: list[tuple[Scorer, dict]] = []

    def epoch() -> EpochLoss:
        fitted.append(fit())
        return EpochLoss(0.0, 0)

    progress = early_stopping(config, dataset, split, epoch, lambda: fitted[0][0],
                              lambda e, metrics: baseline_checkpoint(config, e, metrics, fitted[0][1]), reporter,
                              epochs=1)
    return Fitted(fitted[0][0], 1, progress.history, progress.best_checkpoint(config.metric))
