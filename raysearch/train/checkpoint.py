"""Checkpoints as plain dicts of tensors and Python values: loadable with ``torch.load(weights_only=True)``.

A FusionGCN checkpoint carries everything needed to rebuild and use the model without the dataset files:
the model's constructor arguments, the run config, the state dict, the id maps, the feature vocabularies
and bags, and the training graph's edges. A baseline's checkpoint carries its config and weights.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from raysearch.atomic_files import atomic_write
from raysearch.config import TrainConfig
from raysearch.data.movielens import Dataset
from raysearch.errors import DataError
from raysearch.model.fusion_gcn import FusionGCN
from raysearch.train.optimizers import Optimizer

CHECKPOINT_FILE = "checkpoint.pt"  # a run's best checkpoint; also the file of every Ray Train checkpoint
FORMAT = "raysearch-checkpoint/2"  # 2: fusion modules in ``fusions``, ``fusion`` argument
BASELINE_FORMAT = "raysearch-baseline/1"
ENTRIES = {"model_args": dict, "config": dict, "state_dict": dict, "epoch": int, "metrics": dict,
           "user_ids": torch.Tensor, "item_ids": torch.Tensor, "item_titles": list, "user_fields": list,
           "item_fields": list, "train": torch.Tensor}  # what every use of a checkpoint reads


def model_args(config: TrainConfig, dataset: Dataset) -> dict[str, Any]:
    """Constructor arguments of :class:`FusionGCN` for this config and dataset."""
    return {
        "num_users": dataset.num_users, "num_items": dataset.num_items,
        "user_field_sizes": [f.size for f in dataset.user_fields],
        "item_field_sizes": [f.size for f in dataset.item_fields],
        "embedding_dim": config.embedding_dim, "num_layers": config.settings.num_layers,
        "id_dropout": config.settings.id_dropout, "fusion": config.settings.fusion,
        "user_tower": config.settings.user_tower, "item_tower": config.settings.item_tower,
        "sparse_ids": config.settings.sparse_ids,
    }


def make_checkpoint(model: FusionGCN, config: TrainConfig, dataset: Dataset, train: torch.Tensor,
                    epoch: int, metrics: dict[str, float], optimizer: Optimizer | None = None) -> dict:
    """The plain-dict checkpoint of ``model`` at ``epoch`` (tensors are cloned, so later steps don't change it)."""
    fields = {
        side: [{**f.vocabulary(), "tokens": torch.tensor(f.tokens), "offsets": torch.tensor(f.offsets)}
               for f in getattr(dataset, f"{side}_fields")]
        for side in ("user", "item")
    }
    return {
        "format": FORMAT,
        "model_args": model_args(config, dataset),
        "config": config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "optimizer": copy.deepcopy(optimizer.state_dict()) if optimizer is not None else None,
        "epoch": epoch,
        "metrics": dict(metrics),
        "dataset": dataset.name,
        "user_ids": torch.tensor(dataset.user_ids),
        "item_ids": torch.tensor(dataset.item_ids),
        "item_titles": list(dataset.item_titles),
        "user_fields": fields["user"],
        "item_fields": fields["item"],
        "train": train.cpu().clone(),
    }


def baseline_checkpoint(config: TrainConfig, epoch: int, metrics: dict[str, float], state: dict) -> dict:
    """A baseline's checkpoint: its config, epoch, metrics and weights (for LightGBM, the booster text)."""
    return {"format": BASELINE_FORMAT, "model": config.model, "config": config.to_dict(), "epoch": epoch,
            "metrics": dict(metrics), "state_dict": copy.copy(state)}


def save_checkpoint(checkpoint: dict, path: Path) -> None:
    """Write atomically, so a crash never leaves a half-written checkpoint."""
    atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


def load_checkpoint(path: Path) -> dict:
    """Load with ``weights_only=True`` (no arbitrary code runs) and check the format and entries."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint file not found")
    try:
        checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # a damaged file raises many types (RuntimeError, UnpicklingError, OSError, ...)
        reason = str(err).partition("\n")[0] or type(err).__name__
        raise DataError(f"{path}: not a loadable raysearch checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise DataError(f"{path}: not a raysearch checkpoint (expected format {FORMAT!r})")
    damaged = [key for key, kind in ENTRIES.items() if not isinstance(checkpoint.get(key), kind)
               or kind is torch.Tensor and checkpoint[key].dtype != torch.int64]  # ids and edges
    if damaged:
        raise DataError(f"{path}: damaged raysearch checkpoint: {', '.join(damaged)} missing or of the wrong type")
    return checkpoint


def model_from_checkpoint(checkpoint: dict) -> FusionGCN:
    """Rebuild the model from the checkpoint's own arguments and weights."""
    model = FusionGCN(**checkpoint["model_args"])
    model.load_state_dict(checkpoint["state_dict"])
    return model
