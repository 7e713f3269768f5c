"""Every recommender behind one call: train on a split, get back a :data:`~raysearch.evaluation.Scorer`.

The FusionGCN family (ours, its ablations, and the ID-only ``mf`` / ``lightgcn`` baselines, which are
the same code with attributes, ID dropout and the contrastive term switched off) trains through
:func:`raysearch.training.run_epochs`; the other baselines through their own modules. All of them are
then scored by the one evaluation function, so numbers compare.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from raysearch.baselines import autorec, deepfm, gbdt, popularity
from raysearch.baselines.loop import Fitted
from raysearch.config import MODEL_PINS, TrainConfig
from raysearch.data import Dataset
from raysearch.errors import ConfigError, TrainingDiverged
from raysearch.model import FusionGCN
from raysearch.splits import Split
from raysearch.training import ModelInputs, Reporter, model_scorer, run_epochs

# Models that train as FusionGCN; the rest map to their baseline module's ``train``.
GCN_FAMILY = ("fusion_gcn", *MODEL_PINS)
BASELINE_TRAINERS: dict[str, Callable[..., Fitted]] = {
    "deepfm": deepfm.train, "autorec": autorec.train, "lightgbm": gbdt.train, "popularity": popularity.train,
}
# What each model needs to score a user-item pair: "users" = an interaction history for the user,
# "items" = one for the item. Attribute-aware models need neither.
NEEDS: dict[str, frozenset[str]] = {
    "mf": frozenset({"users", "items"}), "lightgcn": frozenset({"users", "items"}),
    "autorec": frozenset({"users", "items"}), "popularity": frozenset({"items"}),
}
COLD_SIDE = {"item_cold": "items", "user_cold": "users"}


def can_score(config: TrainConfig) -> bool:
    """Whether the model can represent the entities its protocol holds out (attributes or interactions).

    ID-only models cannot place a user or item that has no training interaction; they are reported
    as "n/a (needs interactions)" rather than given invented scores.
    """
    return COLD_SIDE.get(config.split) not in NEEDS.get(config.model, frozenset()) and not (
        config.model == "fusion_gcn" and config.fusion == "none" and config.split in COLD_SIDE)


def train(config: TrainConfig, dataset: Dataset, split: Split, reporter: Reporter | None = None) -> Fitted:
    """Train ``config.model`` with early stopping on validation ``config.metric``; the best epoch's model."""
    if not can_score(config):
        raise ConfigError(f"model {config.model!r} (fusion {config.fusion!r}) needs interactions for every "
                          f"user and item, so it cannot score the {config.split} protocol")
    if config.model in GCN_FAMILY:
        return _train_gcn(config, dataset, split, reporter)
    return BASELINE_TRAINERS[config.model](config, dataset, split, reporter)


def _train_gcn(config: TrainConfig, dataset: Dataset, split: Split, reporter: Reporter | None) -> Fitted:
    run = run_epochs(config, dataset, split, reporter)
    if run.best is None:
        raise TrainingDiverged(f"training produced no finite validation {config.metric} in {len(run.history)} epochs")
    run.model.load_state_dict(run.best["state_dict"])
    return Fitted(model_scorer(run.model, run.inputs), run.best["epoch"], run.history, run.best,
                  fusion_weights(run.model, run.inputs) if run.model.fusions else {})


@torch.no_grad()
def fusion_weights(model: FusionGCN, inputs: ModelInputs) -> dict[str, np.ndarray]:
    """Per-entity attention weights over attribute fields: ``user`` [U, F_u] and ``item`` [I, F_i]."""
    model.eval()
    reps = inputs.forward(model)
    return {"user": reps.user_weights.cpu().numpy(), "item": reps.item_weights.cpu().numpy()}
