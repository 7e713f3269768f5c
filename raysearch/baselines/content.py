"""What the cold-start specialists share: attribute fields as dense content vectors, the MLP towers that
read them, and which side of a protocol is represented by content.

A content vector concatenates one block per field: the entity's bag as a mean-normalised multi-hot
(token 0, "unknown", left out), so each field weighs the same whatever its bag size.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from raysearch.data.features import Field
from raysearch.data.protocols import Split

ACTIVATIONS = {"tanh": nn.Tanh, "leaky_relu": lambda: nn.LeakyReLU(0.2)}


def content_matrix(fields: Sequence[Field]) -> torch.Tensor:
    """Float ``[entities, sum of field sizes - 1 each]``: every field's bag as a mean-normalised multi-hot."""
    blocks = []
    for field in fields:
        counts = np.diff(field.offsets)
        rows = np.repeat(np.arange(len(counts)), counts)
        block = np.zeros((len(counts), field.size), dtype=np.float32)
        np.add.at(block, (rows, field.tokens), 1.0)
        block = block[:, 1:]
        blocks.append(block / np.maximum(block.sum(1, keepdims=True), 1.0))
    return torch.from_numpy(np.concatenate(blocks, 1))


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
