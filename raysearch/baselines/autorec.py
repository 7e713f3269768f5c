"""I-AutoRec (Sedhain et al., 2015) for implicit feedback: each item's vector of training interactions
over all users is encoded into ``embedding_dim`` sigmoid units and decoded back; the reconstruction at
user ``u`` scores item ``i`` for ``u``. Trained with binary cross-entropy over the whole vector (unseen
entries count as 0), since implicit data has no observed negatives to restrict the loss to.
An item or user without training interactions has nothing to encode, so this model needs interactions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from raysearch.config import TrainConfig
from raysearch.data.movielens import Dataset
from raysearch.data.protocols import Split
from raysearch.train.loop import EpochLoss, Fitted, Reporter, fit_epochs, sgd_epoch


class AutoRec(nn.Module):
    """Shapes: ``forward(vectors [B, num_users])`` -> reconstruction logits ``[B, num_users]``."""

    def __init__(self, num_users: int, hidden: int) -> None:
        super().__init__()
        self.encoder = nn.Linear(num_users, hidden)
        self.decoder = nn.Linear(hidden, num_users)

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.sigmoid(self.encoder(vectors)))


def train(config: TrainConfig, dataset: Dataset, split: Split, reporter: Reporter | None = None) -> Fitted:
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = AutoRec(dataset.num_users, config.embedding_dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    matrix = torch.zeros(dataset.num_items, dataset.num_users)
    matrix[torch.as_tensor(split.train[:, 1]), torch.as_tensor(split.train[:, 0])] = 1.0
    items = torch.unique(torch.as_tensor(split.train[:, 1]))

    def epoch() -> EpochLoss:
        batches = torch.split(items[torch.randperm(len(items), generator=generator)], config.batch_size)
        return sgd_epoch(model, optimizer, batches,
                         lambda batch: F.binary_cross_entropy_with_logits(model(matrix[batch]), matrix[batch]))

    @torch.no_grad()
    def scorer():
        model.eval()
        reconstruction = model(matrix).T  # [num_users, num_items]
        return lambda users, candidates: reconstruction[users][:, candidates]

    return fit_epochs(config, dataset, split, model, epoch, scorer, reporter)
