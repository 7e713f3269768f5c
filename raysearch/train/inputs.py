"""What training and scoring take besides the model: the training graph with the attribute bags, the
negative sampler, and the items a training step may touch. Shared by FusionGCN, the baselines and export."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from raysearch.data.features import field_tensors
from raysearch.data.movielens import Dataset
from raysearch.data.protocols import Split
from raysearch.model.fusion_gcn import Representations
from raysearch.model.graph import bipartite_adjacency, sample_subgraph, segments

Bags = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class ModelInputs:
    """What every forward pass takes: the training graph and the attribute bags."""

    adjacency: torch.Tensor  # sparse CSR [N, N], symmetric-normalised
    known: torch.Tensor  # bool [N]: node has a training edge
    user_bags: Bags
    item_bags: Bags

    @classmethod
    def build(cls, dataset: Dataset, train: np.ndarray) -> "ModelInputs":
        adjacency, known = bipartite_adjacency(train, dataset.num_users, dataset.num_items)
        return cls(adjacency, known, field_tensors(dataset.user_fields), field_tensors(dataset.item_fields))

    def to(self, device: torch.device) -> "ModelInputs":
        move = lambda bags: [(t.to(device), o.to(device)) for t, o in bags]  # noqa: E731
        return ModelInputs(self.adjacency.to(device), self.known.to(device), move(self.user_bags), move(self.item_bags))

    @property
    def num_users(self) -> int:
        return len(self.user_bags[0][1])

    def forward(self, model: torch.nn.Module) -> Representations:
        return model(self.adjacency, self.known, self.user_bags, self.item_bags)

    def sampled_forward(self, model: torch.nn.Module, seeds: torch.Tensor, fanout: int, layers: int,
                        generator: torch.Generator) -> tuple[Representations, torch.Tensor]:
        """The representations of a neighbour-sampled subgraph around the node ids ``seeds`` (any shape;
        see :func:`~raysearch.model.graph.sample_subgraph`) and its sorted global node ids: a node's row is
        ``torch.searchsorted(nodes, node)``."""
        nodes, edge_index, edge_weight = sample_subgraph(self.adjacency, seeds.reshape(-1), fanout, layers, generator)
        users = nodes[nodes < self.num_users]
        items = nodes[len(users):] - self.num_users
        reps = model((edge_index, edge_weight), self.known[nodes], select_bags(self.user_bags, users),
                     select_bags(self.item_bags, items), nodes)
        return reps, nodes


def select_bags(bags: Bags, index: torch.Tensor) -> Bags:
    """The bags of the entities ``index``, in that order, in the same ``(tokens, offsets)`` layout."""
    chosen = []
    for tokens, offsets in bags:
        lengths = torch.diff(offsets, append=offsets.new_tensor([len(tokens)]))[index]
        chosen.append((tokens[segments(offsets[index], lengths)], torch.cumsum(lengths, 0) - lengths))
    return chosen


class NegativeSampler:
    """Uniform negatives from the items allowed in training, redrawn when they hit a training positive."""

    def __init__(self, train: np.ndarray, pool: np.ndarray, num_items: int, device: torch.device | None = None) -> None:
        self.num_items = num_items
        self.pool = torch.as_tensor(pool, dtype=torch.long, device=device)
        self.positives = torch.sort(torch.as_tensor(train[:, 0] * num_items + train[:, 1], device=device)).values

    def sample(self, users: torch.Tensor, generator: torch.Generator, retries: int = 5) -> torch.Tensor:
        """One negative item per entry of ``users`` (any shape), drawn again up to ``retries`` times where it is a
        training positive of its user."""
        shape, users = users.shape, users.reshape(-1)
        items = self.draw(users.shape, generator)
        redraw = torch.arange(len(users), device=items.device)  # positions still to check: all, then the clashes
        for _ in range(retries):
            redraw = redraw[self.is_positive(users[redraw], items[redraw])]
            if not len(redraw):
                break
            items[redraw] = self.draw(redraw.shape, generator)
        return items.view(shape)

    def draw(self, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
        return self.pool[torch.randint(len(self.pool), shape, generator=generator).to(self.pool.device)]

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """bool, True where (user, item) is a training pair."""
        keys = users * self.num_items + items
        found = torch.searchsorted(self.positives, keys).clamp(max=len(self.positives) - 1)
        return self.positives[found] == keys


def training_items(dataset: Dataset, split: Split) -> np.ndarray:
    """Items a training step may touch: all but the cold items of the split."""
    return np.setdiff1d(np.arange(dataset.num_items), np.concatenate(list(split.cold_items.values())))
