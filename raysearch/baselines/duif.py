"""DUIF-style content tower (after Geng et al., ICCV 2015, as the cold-start toolkits re-implement it): one
side is represented by its attributes only, an MLP over its content vector, for warm and cold entities alike;
the other side has ID embeddings. Trained with the sampled-softmax ranking loss (the same negatives as
FusionGCN), so the tower learns to rank from attributes alone. The content side is the protocol's cold side
(items on the warm split), so it serves item and user cold start.
"""

from __future__ import annotations

import torch
from torch import nn

from raysearch.baselines.content import content_side, tower
from raysearch.config import TrainConfig
from raysearch.data.features import content_matrix
from raysearch.data.movielens import Dataset
from raysearch.data.protocols import Split
from raysearch.evaluation.scoring import Scorer
from raysearch.model.losses import sampled_softmax_loss
from raysearch.train.inputs import NegativeSampler, training_items
from raysearch.train.loop import EpochLoss, Fitted, Reporter, fit_epochs, sgd_epoch


class ContentTower(nn.Module):
    """ID embeddings for one side, an MLP over content vectors for the other.

    Shapes: ``content`` [content entities, features]; :meth:`vectors` -> users [U, d], items [I, d].
    """

    def __init__(self, num_ids: int, content: torch.Tensor, content_side: str, embedding_dim: int,
                 hidden: int) -> None:
        super().__init__()
        self.content_side = content_side
        self.ids = nn.Embedding(num_ids, embedding_dim)
        self.tower = tower([content.shape[1], hidden, embedding_dim], "leaky_relu")
        self.register_buffer("content", content, persistent=False)
        nn.init.normal_(self.ids.weight, std=0.1)

    def vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = self.tower(self.content)
        return (self.ids.weight, encoded) if self.content_side == "items" else (encoded, self.ids.weight)


def train(config: TrainConfig, dataset: Dataset, split: Split, reporter: Reporter | None = None) -> Fitted:
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    side = content_side(split)
    content = content_matrix(dataset.item_fields if side == "items" else dataset.user_fields)
    model = ContentTower(dataset.num_users if side == "items" else dataset.num_items, content, side,
                         config.embedding_dim, config.settings.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    pairs = torch.as_tensor(split.train, dtype=torch.long)
    sampler = NegativeSampler(split.train, training_items(dataset, split), dataset.num_items)

    def loss(batch: torch.Tensor) -> torch.Tensor:
        users, items = pairs[batch, 0], pairs[batch, 1]
        negatives = sampler.sample(users.repeat_interleave(config.num_negatives), generator)
        user_vectors, item_vectors = model.vectors()
        user = user_vectors[users]
        negative = item_vectors[negatives].view(len(users), config.num_negatives, -1)
        return sampled_softmax_loss((user * item_vectors[items]).sum(1), torch.einsum("bd,bkd->bk", user, negative))

    def epoch() -> EpochLoss:
        return sgd_epoch(model, optimizer, torch.split(torch.randperm(len(pairs), generator=generator),
                                                       config.batch_size), loss)

    return fit_epochs(config, dataset, split, model, epoch, lambda: vector_scorer(model), reporter)


@torch.no_grad()
def vector_scorer(model: nn.Module) -> Scorer:
    """Dot products of the model's ``vectors()`` in inference mode."""
    model.eval()
    users, items = model.vectors()
    return lambda u, i: users[u] @ items[i].T
