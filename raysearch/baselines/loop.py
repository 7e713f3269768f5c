"""The early-stopping epoch loop the PyTorch baselines share, and what any trained model hands back."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch

from raysearch.config import TrainConfig
from raysearch.data import Dataset
from raysearch.errors import TrainingDiverged
from raysearch.evaluation import Scorer, evaluate
from raysearch.splits import Split, eval_task

BASELINE_FORMAT = "raysearch-baseline/1"


@dataclass
class Fitted:
    """A trained model at its best validation epoch."""

    scorer: Scorer  # users [B], items [C] -> scores [B, C]
    best_epoch: int
    history: list[dict[str, float]]  # one row of metrics per epoch run
    checkpoint: dict  # plain dict of the best epoch (weights_only-loadable)
    fusion_weights: dict[str, np.ndarray] = field(default_factory=dict)  # side -> [entities, fields]


def validation_metrics(scorer: Scorer, dataset: Dataset, split: Split, config: TrainConfig) -> dict[str, float]:
    """Full-ranking metrics of the validation part, keys prefixed ``valid_``."""
    metrics = evaluate(scorer, eval_task(split, "valid"), dataset.num_items, config.topk, config.eval_batch_users)
    return {f"valid_{k}": v for k, v in metrics.items()}


def sgd_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable[torch.Tensor],
              loss: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """One optimizer step per batch on ``loss(batch)``; returns the mean loss."""
    model.train()
    total, steps = 0.0, 0
    for batch in batches:
        value = loss(batch)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        total, steps = total + value.item(), steps + 1
    return total / max(steps, 1)


def early_stopping(config: TrainConfig, dataset: Dataset, split: Split, model: torch.nn.Module,
                   train_epoch: Callable[[], float], scorer: Callable[[], Scorer], reporter=None) -> Fitted:
    """Run ``train_epoch`` until ``config.patience`` epochs pass without a better validation
    ``config.metric``; return the best epoch's model. A non-finite loss raises
    :class:`~raysearch.errors.TrainingDiverged`, as in :func:`raysearch.training.run_epochs`.

    ``reporter`` has the :class:`raysearch.training.Reporter` signature; checkpoints are plain dicts.
    """
    best_epoch, best_value, best, history = 0, -math.inf, None, []
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        loss = train_epoch()
        if not math.isfinite(loss):
            raise TrainingDiverged(f"{config.model} diverged at epoch {epoch}: the mean training loss is {loss} "
                                   "(try a lower learning_rate)")
        seconds = time.perf_counter() - started
        valid = validation_metrics(scorer(), dataset, split, config)
        improved = valid[f"valid_{config.metric}"] > best_value
        if improved:
            best_epoch, best_value = epoch, valid[f"valid_{config.metric}"]
            best = checkpoint(config, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
        metrics = {"epoch": epoch, "loss": loss, "epoch_seconds": seconds, **valid,
                   "best_epoch": best_epoch, "best_value": best_value}
        history.append(metrics)
        if reporter is not None:
            reporter(metrics, lambda: best, improved)
        if epoch - best_epoch >= config.patience:
            break
    model.load_state_dict(best["state_dict"])
    return Fitted(scorer(), best_epoch, history, best)


def checkpoint(config: TrainConfig, epoch: int, state: dict) -> dict:
    """A baseline's checkpoint: its config and weights (or, for LightGBM, the booster text)."""
    return {"format": BASELINE_FORMAT, "model": config.model, "config": config.to_dict(), "epoch": epoch,
            "state_dict": copy.copy(state)}


def single_report(config: TrainConfig, dataset: Dataset, split: Split, scorer: Scorer, state: dict,
                  seconds: float, reporter=None) -> Fitted:
    """For models fitted in one go (popularity, LightGBM): one epoch's report and the result."""
    valid = validation_metrics(scorer, dataset, split, config)
    metrics = {"epoch": 1, "loss": 0.0, "epoch_seconds": seconds, **valid, "best_epoch": 1,
               "best_value": valid[f"valid_{config.metric}"]}
    best = checkpoint(config, 1, state)
    if reporter is not None:
        reporter(metrics, lambda: best, True)
    return Fitted(scorer, 1, [metrics], best)
