"""DeepFM (Guo et al., 2017) over user/item IDs and the same attribute fields, trained pointwise with
binary cross-entropy against sampled negatives.

IDs of entities without training interactions map to a shared "unknown" row, and in training a random
share (``id_dropout``) of IDs is replaced by it, so cold users and items are scored from their fields.
Scoring all candidates of a user batch never materialises the pair features: the FM terms and the
first deep layer split into a user part and an item part that are added by broadcasting.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from raysearch.config import TrainConfig
from raysearch.data.features import field_tensors
from raysearch.data.movielens import Dataset
from raysearch.data.protocols import Split
from raysearch.model.fusion_gcn import FieldBags
from raysearch.train.inputs import NegativeSampler, training_items
from raysearch.train.loop import EpochLoss, Fitted, Reporter, fit_epochs, sgd_epoch


class Side(nn.Module):
    """One side (users or items): ID + attribute fields -> the side's FM sums and first deep layer.

    Shapes: ``forward(ids [N], bags)`` (the N entities' own bags) -> linear [N], sum [N, k],
    square [N], hidden [N, h].
    """

    def __init__(self, num_ids: int, field_sizes: Sequence[int], embedding_dim: int, hidden: int) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList([nn.EmbeddingBag(num_ids + 1, embedding_dim, mode="mean")]
                                        + [nn.EmbeddingBag(n, embedding_dim, mode="mean") for n in field_sizes])
        self.weights = nn.ModuleList([nn.EmbeddingBag(num_ids + 1, 1, mode="mean")]
                                     + [nn.EmbeddingBag(n, 1, mode="mean") for n in field_sizes])
        self.deep = nn.Linear(embedding_dim * len(self.embeddings), hidden, bias=False)
        for bag in self.embeddings:
            nn.init.normal_(bag.weight, std=0.01)
        for bag in self.weights:
            nn.init.zeros_(bag.weight)

    def forward(self, ids: torch.Tensor, bags: FieldBags) -> tuple[torch.Tensor, ...]:
        inputs = [(ids, torch.arange(len(ids)))] + list(bags)
        vectors = torch.stack([emb(t, o) for emb, (t, o) in zip(self.embeddings, inputs)], 1)  # [N, f, k]
        linear = sum(w(t, o).squeeze(1) for w, (t, o) in zip(self.weights, inputs))
        return linear, vectors.sum(1), vectors.pow(2).sum((1, 2)), self.deep(vectors.flatten(1))


class DeepFM(nn.Module):
    """FM (first and second order over all fields) + an MLP, summed into one logit per (user, item)."""

    def __init__(self, num_users: int, num_items: int, user_field_sizes: Sequence[int],
                 item_field_sizes: Sequence[int], embedding_dim: int, mlp_dims: Sequence[int]) -> None:
        super().__init__()
        self.users = Side(num_users, user_field_sizes, embedding_dim, mlp_dims[0])
        self.items = Side(num_items, item_field_sizes, embedding_dim, mlp_dims[0])
        self.bias = nn.Parameter(torch.zeros(mlp_dims[0]))
        layers: list[nn.Module] = []
        for width, nxt in zip(mlp_dims, [*mlp_dims[1:], 1]):
            layers += [nn.ReLU(), nn.Linear(width, nxt)]
        self.mlp = nn.Sequential(*layers)

    def logits(self, user: tuple[torch.Tensor, ...], item: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Logits for broadcastable user/item side outputs (aligned pairs, or a [B, 1] x [1, C] grid)."""
        (lu, su, qu, hu), (li, si, qi, hi) = user, item
        second = 0.5 * ((su + si).pow(2).sum(-1) - qu - qi)
        return lu + li + second + self.mlp(hu + hi + self.bias).squeeze(-1)


def _rows(tokens: torch.Tensor, offsets: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The bags of ``rows`` only, as (tokens, offsets) for ``nn.EmbeddingBag``."""
    ends = torch.cat([offsets[1:], torch.tensor([len(tokens)])])
    lengths = (ends - offsets)[rows]
    starts = torch.repeat_interleave(offsets[rows] - torch.cumsum(lengths, 0) + lengths, lengths)
    picked = tokens[starts + torch.arange(int(lengths.sum()))]
    return picked, torch.cumsum(lengths, 0) - lengths


def _expand(side: tuple[torch.Tensor, ...], dim: int) -> tuple[torch.Tensor, ...]:
    return tuple(t.unsqueeze(dim) for t in side)


def train(config: TrainConfig, dataset: Dataset, split: Split, reporter: Reporter | None = None) -> Fitted:
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = DeepFM(dataset.num_users, dataset.num_items, [f.size for f in dataset.user_fields],
                   [f.size for f in dataset.item_fields], config.embedding_dim, config.settings.mlp_dims)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    user_bags, item_bags = field_tensors(dataset.user_fields), field_tensors(dataset.item_fields)
    pairs = torch.as_tensor(split.train, dtype=torch.long)
    known_users = torch.zeros(dataset.num_users, dtype=torch.bool).index_fill_(0, pairs[:, 0], True)
    known_items = torch.zeros(dataset.num_items, dtype=torch.bool).index_fill_(0, pairs[:, 1], True)
    sampler = NegativeSampler(split.train, training_items(dataset, split), dataset.num_items)

    def ids(index: torch.Tensor, known: torch.Tensor, dropout: float = 0.0) -> torch.Tensor:
        """ID rows: index + 1, or 0 ("unknown") for entities never seen in training (or dropped)."""
        keep = known[index] & (torch.rand(index.shape, generator=generator) >= dropout)
        return torch.where(keep, index + 1, torch.zeros_like(index))

    def loss(batch: torch.Tensor) -> torch.Tensor:
        """BCE of each positive pair (label 1) and its ``num_negatives`` sampled negatives (label 0)."""
        users = pairs[batch, 0].repeat_interleave(1 + config.num_negatives)
        items = torch.stack([pairs[batch, 1], *sampler.sample(pairs[batch, 0].repeat(config.num_negatives, 1),
                                                            generator)]).T.reshape(-1)
        labels = torch.zeros(len(batch), 1 + config.num_negatives)
        labels[:, 0] = 1.0
        logits = model.logits(model.users(ids(users, known_users, config.settings.id_dropout), _take(user_bags, users)),
                              model.items(ids(items, known_items, config.settings.id_dropout), _take(item_bags, items)))
        return F.binary_cross_entropy_with_logits(logits, labels.reshape(-1))

    def epoch() -> EpochLoss:
        return sgd_epoch(model, optimizer, torch.split(torch.randperm(len(pairs), generator=generator),
                                                       config.batch_size), loss)

    @torch.no_grad()
    def scorer():
        model.eval()
        all_items = torch.arange(dataset.num_items)
        item_side = model.items(ids(all_items, known_items), item_bags)

        def score(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
            user_side = model.users(ids(users, known_users), _take(user_bags, users))
            return model.logits(_expand(user_side, 1), _expand(tuple(t[items] for t in item_side), 0))
        return score

    return fit_epochs(config, dataset, split, model, epoch, scorer, reporter)


def _take(bags: FieldBags, rows: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [_rows(tokens, offsets, rows) for tokens, offsets in bags]
