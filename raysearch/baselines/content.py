"""What the cold-start specialists share: the MLP towers that read content vectors
(:func:`~raysearch.data.features.content_matrix`), and which side of a protocol is represented by content."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from raysearch.data.protocols import Split

ACTIVATIONS = {"tanh": nn.Tanh, "leaky_relu": lambda: nn.LeakyReLU(0.2)}


def tower(widths: Sequence[int], activation: str = "tanh", batch_norm: bool = False) -> nn.Sequential:
    """An MLP ``widths[0] -> ... -> widths[-1]``: Linear (+ BatchNorm) + activation between layers, a
    plain Linear at the end."""
    layers: list[nn.Module] = []
    for width, following in zip(widths[:-2], widths[1:-1]):
        layers += [nn.Linear(width, following), *([nn.BatchNorm1d(following)] if batch_norm else []),
                   ACTIVATIONS[activation]()]
    return nn.Sequential(*layers, nn.Linear(widths[-2], widths[-1]))


def content_side(split: Split) -> str:
    """The side a specialist represents by content: the protocol's cold side (items on the warm split)."""
    return "users" if split.protocol == "user_cold" else "items"


def has_training(pairs: np.ndarray, count: int, column: int) -> torch.Tensor:
    """Bool ``[count]``: entities (column 0 users, 1 items) with at least one training pair."""
    known = torch.zeros(count, dtype=torch.bool)
    known[torch.as_tensor(pairs[:, column])] = True
    return known
