"""CLCRec (Wei et al., ACM MM 2021): contrastive learning aligns a content encoder with collaborative ID
embeddings, and cold entities are represented by the encoder.

Both sides have ID embeddings; the content side (the protocol's cold side, items on the warm split) also
has an encoder ``Linear -> LeakyReLU -> Linear`` over its content vector. Two InfoNCE terms, as in the paper:
- content: an entity's normalised ID embedding must pick out its own encoded content among the batch's
  (in-batch negatives, cosine / temperature);
- ranking: a user's vector must pick out the positive item among it and ``num_negatives`` sampled negatives
  (dot product / temperature), where each content-side vector is its encoding with chance ``mix_ratio``
  and its ID embedding otherwise (the paper's hybrid inputs), so the ranking also trains the encoder.
``L = contrastive_weight * L_content + (1 - contrastive_weight) * L_rank + norm_weight * (mean ||e_u|| +
mean ||e_i||) / 2``. At inference warm entities use their ID embeddings and cold ones their encoding. The
paper targets cold items; the same terms on the user side serve cold users.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from raysearch.baselines.content import content_side, has_training, tower
from raysearch.baselines.duif import vector_scorer
from raysearch.config import TrainConfig
from raysearch.data.features import content_matrix
from raysearch.data.movielens import Dataset
from raysearch.data.protocols import Split
from raysearch.model.losses import info_nce
from raysearch.train.inputs import NegativeSampler, training_items
from raysearch.train.loop import EpochLoss, Fitted, Reporter, fit_epochs, sgd_epoch

SIDES = ("users", "items")


class CLCRec(nn.Module):
    """ID embeddings for both sides and a content encoder for ``content_side``.

    Shapes: ``content`` [entities of the content side, features], ``known`` bool [same entities];
    :meth:`vectors` -> users [U, d], items [I, d] (cold content-side rows encoded).
    """

    def __init__(self, num_users: int, num_items: int, content: torch.Tensor, known: torch.Tensor,
                 content_side: str, embedding_dim: int, hidden: int) -> None:
        super().__init__()
        self.side = SIDES.index(content_side)
        self.ids = nn.ModuleList(nn.Embedding(n, embedding_dim) for n in (num_users, num_items))
        self.encoder = tower([content.shape[1], hidden, embedding_dim], "leaky_relu")
        self.register_buffer("content", content, persistent=False)
        self.register_buffer("known", known, persistent=False)
        for table in self.ids:
            nn.init.xavier_uniform_(table.weight)

    def encode(self, rows: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.content[rows])

    def vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        tables = [table.weight for table in self.ids]
        own = tables[self.side]
        tables[self.side] = torch.where(self.known.unsqueeze(1), own, self.encode(torch.arange(len(own))))
        return tables[0], tables[1]


def train(config: TrainConfig, dataset: Dataset, split: Split, reporter: Reporter | None = None) -> Fitted:
    own = config.settings
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    side = content_side(split)
    column = SIDES.index(side)
    fields = dataset.item_fields if side == "items" else dataset.user_fields
    model = CLCRec(dataset.num_users, dataset.num_items, content_matrix(fields),
                   has_training(split.train, len(fields[0].offsets) - 1, column), side, config.embedding_dim,
                   own.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    pairs = torch.as_tensor(split.train, dtype=torch.long)
    sampler = NegativeSampler(split.train, training_items(dataset, split), dataset.num_items)

    def mixed(rows: torch.Tensor) -> torch.Tensor:
        """Where the content side uses its encoding (chance ``mix_ratio``) rather than its ID embedding."""
        return torch.rand(rows.shape, generator=generator) < own.mix_ratio

    def loss(batch: torch.Tensor) -> torch.Tensor:
        """Scores come from [B, entities] products gathered at the candidates, not from a [B, 1 + K, d]
        tensor of candidate vectors: the same values at a fraction of the memory traffic."""
        users, items = pairs[batch, 0], pairs[batch, 1]
        candidates = torch.cat([items.unsqueeze(1), sampler.sample(
            users.repeat_interleave(config.num_negatives), generator).view(len(batch), -1)], 1)
        user, item_ids = model.ids[0](users), model.ids[1].weight
        if side == "users":
            user = torch.where(mixed(users).unsqueeze(1), model.encode(users), user)
        scores = (user @ item_ids.T).gather(1, candidates)
        item_norms = item_ids.norm(dim=1)[candidates]
        if side == "items":
            use, encoded = mixed(candidates), model.encode(torch.arange(len(item_ids)))
            scores = torch.where(use, (user @ encoded.T).gather(1, candidates), scores)
            item_norms = torch.where(use, encoded.norm(dim=1)[candidates], item_norms)
        rank = F.cross_entropy(scores / own.temperature, torch.zeros(len(batch), dtype=torch.long))
        entities = torch.unique(pairs[batch, column])
        content = info_nce(model.ids[column](entities), model.encode(entities), own.temperature)
        norms = (user.norm(dim=-1).mean() + item_norms.mean()) / 2
        return own.contrastive_weight * content + (1 - own.contrastive_weight) * rank + own.norm_weight * norms

    def epoch() -> EpochLoss:
        return sgd_epoch(model, optimizer, torch.split(torch.randperm(len(pairs), generator=generator),
                                                       config.batch_size), loss)

    return fit_epochs(config, dataset, split, model, epoch, lambda: vector_scorer(model), reporter)
