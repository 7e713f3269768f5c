"""The one early-stopping epoch loop every model trains through (FusionGCN, in-process or on Ray Train
workers, and every baseline), and what a trained model hands back.

The loop owns the divergence check, the validation scoring, the best-epoch tracking and patience; a
model supplies its epoch (a function returning the mean training loss), its scorer and its checkpoint.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

import numpy as np
import torch

from raysearch.config import TrainConfig
from raysearch.data.movielens import Dataset
from raysearch.data.protocols import Split, eval_task
from raysearch.errors import TrainingDiverged
from raysearch.evaluation.scoring import Scorer, evaluate
from raysearch.train.checkpoint import baseline_checkpoint


class Reporter(Protocol):
    """Receives each epoch's metrics; ``checkpoint()`` builds the checkpoint to keep on demand."""

    def __call__(self, metrics: dict[str, float], checkpoint: Callable[[], dict], improved: bool) -> None: ...


@dataclass
class Progress:
    """Where the loop stands: every epoch's metrics and the best epoch so far."""

    epoch: int = 0  # the last epoch run (a resumed run starts after its checkpoint's)
    best_epoch: int = 0
    best_value: float = -math.inf
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


def early_stopping(config: TrainConfig, dataset: Dataset, split: Split, train_epoch: Callable[[], float],
                   scorer: Callable[[], Scorer], snapshot: Callable[[int, dict], dict],
                   reporter: Reporter | None = None, *, hint: str = "try a lower learning_rate",
                   progress: Progress | None = None, epochs: int | None = None) -> Progress:
    """Run epochs ``progress.epoch`` + 1 .. ``epochs`` (default ``config.epochs``) until ``config.patience``
    epochs pass without a better validation ``config.metric``.

    Each epoch: ``train_epoch()``; a non-finite loss raises :class:`TrainingDiverged` naming the epoch, the
    loss and ``hint`` before anything is reported; then ``scorer()`` is scored on the whole validation part
    (so every data-parallel rank computes the same metrics), ``reporter`` gets the metrics and
    ``snapshot(epoch, metrics)`` builds a checkpoint (kept in ``progress.best`` when the epoch improved).
    ``progress`` continues a resumed run.
    """
    progress = progress or Progress()
    task = eval_task(split, "valid")
    for epoch in range(progress.epoch + 1, (epochs or config.epochs) + 1):
        started = time.perf_counter()
        loss = train_epoch()
        if not math.isfinite(loss):
            raise TrainingDiverged(f"training diverged at epoch {epoch}: the mean training loss is {loss} ({hint})")
        seconds = time.perf_counter() - started
        progress.epoch = epoch
        valid = evaluate(scorer(), task, dataset.num_items, config.topk, config.eval_batch_users)
        improved = valid[config.metric] > progress.best_value
        if improved:
            progress.best_epoch, progress.best_value = epoch, valid[config.metric]
        metrics = {"epoch": epoch, "loss": loss, "epoch_seconds": seconds,
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


def sgd_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable[torch.Tensor],
              loss: Callable[[torch.Tensor], torch.Tensor], scaler: torch.amp.GradScaler | None = None) -> float:
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
    return total / max(steps, 1)


def fit_epochs(config: TrainConfig, dataset: Dataset, split: Split, model: torch.nn.Module,
               train_epoch: Callable[[], float], scorer: Callable[[], Scorer],
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

    def epoch() -> float:
        fitted.append(fit())
        return 0.0

    progress = early_stopping(config, dataset, split, epoch, lambda: fitted[0][0],
                              lambda e, metrics: baseline_checkpoint(config, e, metrics, fitted[0][1]), reporter,
                              epochs=1)
    return Fitted(fitted[0][0], 1, progress.history, progress.best_checkpoint(config.metric))
