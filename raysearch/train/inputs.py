"""What training and scoring take besides the model: the training graph with the attribute bags, the
negative sampler, and the items a training step may touch. Shared by FusionGCN, the baselines and export."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from raysearch.data.features import Field, content_matrix, field_tensors
from raysearch.data.movielens import Dataset
from raysearch.data.protocols import Split
from raysearch.model.fusion_gcn import Representations
from raysearch.model.graph import (SampledGraph, attribute_neighbours, bipartite_adjacency, sample_neighbours,
                                   segments, sparse_matmul)

Bags = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class ModelInputs:
    """What every forward pass takes: the training graph and the attribute bags."""

    adjacency: torch.Tensor  # sparse CSR [N, N], symmetric-normalised
    known: torch.Tensor  # bool [N]: node has a training edge
    user_bags: Bags
    item_bags: Bags
    neighbours: tuple[torch.Tensor, torch.Tensor] | None = None  # attribute-neighbour mix [N, N] and its transpose

    @classmethod
    def build(cls, dataset: Dataset, train: np.ndarray, neighbours: tuple[int, int] = (0, 0)) -> "ModelInputs":
        """neighbours: ``k`` of the users' and of the items' attribute neighbours (0 = none)."""
        return cls.from_fields(dataset.user_fields, dataset.item_fields, train, (dataset.num_users, dataset.num_items),
                               neighbours)

    @classmethod
    def from_fields(cls, user_fields: Sequence[Field], item_fields: Sequence[Field], train: np.ndarray,
                    sizes: tuple[int, int], neighbours: tuple[int, int] = (0, 0)) -> "ModelInputs":
        """The same from the attribute fields and the numbers of users and items (what a checkpoint carries)."""
        fields = (user_fields, item_fields)
        adjacency, known = bipartite_adjacency(train, *sizes)
        mix = attribute_neighbours([content_matrix(f) for f in fields], known, neighbours) if any(neighbours) else None
        return cls(adjacency, known, *(field_tensors(f) for f in fields), mix)

    def to(self, device: torch.device) -> "ModelInputs":
        move = lambda bags: [(t.to(device), o.to(device)) for t, o in bags]  # noqa: E731
        mix = None if self.neighbours is None else tuple(m.to(device) for m in self.neighbours)
        return ModelInputs(self.adjacency.to(device), self.known.to(device), move(self.user_bags),
                           move(self.item_bags), mix)

    @property
    def num_users(self) -> int:
        return len(self.user_bags[0][1])

    def forward(self, model: torch.nn.Module) -> Representations:
        return model(self.adjacency, self.known, self.user_bags, self.item_bags, neighbours=self.neighbours)

    def sampled_forward(self, model: torch.nn.Module, seeds: torch.Tensor, fanout: int, history: "History",
                        generator: torch.Generator) -> tuple[Representations, torch.Tensor]:
        """The representations of the node ids ``seeds`` (any shape) from their sampled neighbours (see
        :func:`~raysearch.model.graph.sample_neighbours`), whose layer inputs come from ``history``, which then
        takes the seeds' new ones; returns them with the seeds' sorted global ids (a node's row is
        ``torch.searchsorted(ids, node)``). Only the seeds are computed (IDs, attributes, layers), so a step's cost
        depends on the batch and the fan-out, not on the graph."""
        nodes, positions, matrix, transposed = sample_neighbours(self.adjacency, seeds.reshape(-1), fanout, generator)
        seeds = nodes[positions]
        users = seeds[seeds < self.num_users]
        items = seeds[len(users):] - self.num_users
        reps = model(SampledGraph(positions, matrix, transposed, *history.gather(nodes, positions)), self.known[seeds],
                     select_bags(self.user_bags, users), select_bags(self.item_bags, items), seeds)
        history.push(seeds, reps.layers)
        return reps, seeds


class History:
    """Every node's inputs of layers 1..L (its ID + attributes, then the outputs of layers 1..L-1) as last computed
    (GNNAutoScale's histories, Fey et al. 2021): a sampled step computes its seeds' layers from their sampled
    neighbours' inputs, read here, so its cost depends on the batch and the fan-out, not on the graph. An exact full
    propagation at every epoch's start gives the ``reference`` (and the last layer's exact outputs from it); every
    step then writes its seeds' new inputs as their ``drift`` from it, what the control variates sample (see
    :class:`~raysearch.model.graph.SampledGraph`). A node's current inputs are ``reference + drift``."""

    def __init__(self, model: torch.nn.Module, inputs: ModelInputs) -> None:
        training = model.training
        with torch.no_grad():
            layers = inputs.forward(model.eval()).layers
        model.train(training)
        self.reference = torch.stack(layers, 1) if layers else torch.empty(len(inputs.known), 0, 0)  # [N, L, d]
        self.drift = torch.zeros_like(self.reference)
        self.last = sparse_matmul(inputs.adjacency, inputs.adjacency, layers[-1]) if layers else None  # [N, d]

    def gather(self, nodes: torch.Tensor, seeds: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], ...]:
        """Per layer: the drift ``[c, d]`` of the context ``nodes``, and the reference inputs and exact outputs
        ``[s, d]`` of its seeds (positions ``seeds`` in ``nodes``), as :class:`~raysearch.model.graph.SampledGraph`
        takes them. Layer l's exact output from the reference is layer l+1's reference input."""
        if self.last is None:  # no layers
            return (), (), ()
        reference = self.reference[nodes[seeds]]
        base = torch.cat([reference[:, 1:], self.last[nodes[seeds]].unsqueeze(1)], 1)
        return self.drift[nodes].unbind(1), reference.unbind(1), base.unbind(1)

    def push(self, nodes: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> None:
        if inputs:
            self.drift[nodes] = torch.stack(inputs, 1).detach().to(self.drift.dtype) - self.reference[nodes]


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

    def sample(self, users: torch.Tensor, generator: torch.Generator, retries: int = 5,
               pool: torch.Tensor | None = None) -> torch.Tensor:
        """One negative item per entry of ``users`` (any shape), drawn again up to ``retries`` times where it is a
        training positive of its user; from ``pool`` (items) if given, else from all the items allowed."""
        pool = self.pool if pool is None else pool
        shape, users = users.shape, users.reshape(-1)
        items = self.draw(users.shape, generator, pool)
        redraw = torch.arange(len(users), device=items.device)  # positions still to check: all, then the clashes
        for _ in range(retries):
            redraw = redraw[self.is_positive(users[redraw], items[redraw])]
            if not len(redraw):
                break
            items[redraw] = self.draw(redraw.shape, generator, pool)
        return items.view(shape)

    def draw(self, shape: torch.Size | tuple[int, ...], generator: torch.Generator,
             pool: torch.Tensor | None = None) -> torch.Tensor:
        """Items drawn uniformly from ``pool`` (default: all the items allowed)."""
        pool = self.pool if pool is None else pool
        return pool[torch.randint(len(pool), shape, generator=generator).to(pool.device)]

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """bool, True where (user, item) is a training pair."""
        keys = users * self.num_items + items
        found = torch.searchsorted(self.positives, keys).clamp(max=len(self.positives) - 1)
        return self.positives[found] == keys


def training_items(dataset: Dataset, split: Split) -> np.ndarray:
    """Items a training step may touch: all but the cold items of the split."""
    return np.setdiff1d(np.arange(dataset.num_items), np.concatenate(list(split.cold_items.values())))
