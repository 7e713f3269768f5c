"""DropoutNet (Volkovs, Yu and Poutanen, NeurIPS 2017): warm preference vectors plus content, with input
dropout on the preference part, through MLP towers trained to reproduce the warm scores.

1. Preference vectors: a BPR matrix factorisation (the registry's ``mf``, FusionGCN's code with IDs only)
   trained for ``backbone_epochs`` on the training part; an entity without training pairs gets zeros.
2. Two towers (users, items), each ``[preference ‖ content] -> (Linear, BatchNorm, tanh) x len(hidden) ->
   Linear(embedding_dim)`` as in the paper's code, trained by mean squared error between the towers' dot
   product and the frozen backbone's, on every training pair and its sampled negatives. In training each
   pair's user and item preference input is zeroed with chance ``dropout``, so a tower learns to score
   from content alone: exactly what a cold user or item (zero preference vector) gets at inference.
Both sides have towers, so one model serves item and user cold start.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from raysearch.baselines.content import tower
from raysearch.baselines.duif import vector_scorer
from raysearch.config import TrainConfig
from raysearch.data.features import content_matrix
from raysearch.data.movielens import Dataset
from raysearch.data.protocols import Split
from raysearch.train.fusion_gcn import build_model, train_epoch
from raysearch.train.inputs import ModelInputs, NegativeSampler, training_items
from raysearch.train.loop import EpochLoss, Fitted, Reporter, fit_epochs, sgd_epoch


class DropoutNet(nn.Module):
    """User and item towers over ``[preference ‖ content]``.

    Shapes: ``preferences`` users [U, d] and items [I, d] (zeros for cold entities), ``contents`` users
    [U, f_u] and items [I, f_i]; :meth:`vectors` -> users [U, d], items [I, d].
    """

    def __init__(self, preferences: tuple[torch.Tensor, torch.Tensor], contents: tuple[torch.Tensor, torch.Tensor],
                 embedding_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.towers = nn.ModuleList(
            tower([p.shape[1] + c.shape[1], *hidden, embedding_dim], "tanh", batch_norm=True)
            for p, c in zip(preferences, contents))
        for side, (preference, content) in enumerate(zip(preferences, contents)):
            self.register_buffer(f"preference{side}", preference, persistent=False)
            self.register_buffer(f"content{side}", content, persistent=False)

    def encode(self, side: int, rows: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Tower ``side`` (0 users, 1 items) on ``rows``; ``keep`` (bool per row) zeroes dropped preferences."""
        preference = getattr(self, f"preference{side}")[rows]
        if keep is not None:
            preference = preference * keep.unsqueeze(1)
        return self.towers[side](torch.cat([preference, getattr(self, f"content{side}")[rows]], 1))

    def vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(self.encode(side, torch.arange(len(getattr(self, f"content{side}")))) for side in (0, 1))


def backbone(config: TrainConfig, dataset: Dataset, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """BPR-MF user [U, d] and item [I, d] vectors after ``backbone_epochs`` epochs; zeros without training pairs."""
    mf = TrainConfig.from_dict({"model": "mf", "dataset": config.dataset, "split": config.split,
                                "seed": config.seed, "embedding_dim": config.embedding_dim})
    torch.manual_seed(mf.seed)
    model = build_model(mf, dataset)
    optimizer = torch.optim.Adam(model.parameters(), lr=mf.learning_rate, weight_decay=mf.weight_decay)
    inputs = ModelInputs.build(dataset, split.train)
    sampler = NegativeSampler(split.train, training_items(dataset, split), dataset.num_items)
    pairs = torch.as_tensor(split.train, dtype=torch.long)
    generator = torch.Generator().manual_seed(mf.seed)
    for _ in range(config.settings.backbone_epochs):
        train_epoch(model, optimizer, inputs, pairs, sampler, mf, generator)
    with torch.no_grad():
        nodes = inputs.forward(model.eval()).nodes * inputs.known.unsqueeze(1)
    return nodes[:dataset.num_users], nodes[dataset.num_users:]


def train(config: TrainConfig, dataset: Dataset, split: Split, reporter: Reporter | None = None) -> Fitted:
    own = config.settings
    users, items = backbone(config, dataset, split)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = DropoutNet((users, items), (content_matrix(dataset.user_fields), content_matrix(dataset.item_fields)),
                       config.embedding_dim, own.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    pairs = torch.as_tensor(split.train, dtype=torch.long)
    sampler = NegativeSampler(split.train, training_items(dataset, split), dataset.num_items)

    def loss(batch: torch.Tensor) -> torch.Tensor:
        """Squared error to the backbone's score on each pair and its negatives, preferences dropped at random."""
        batch_users = pairs[batch, 0].repeat_interleave(1 + config.num_negatives)
        negatives = sampler.sample(pairs[batch, 0].repeat_interleave(config.num_negatives), generator)
        batch_items = torch.cat([pairs[batch, 1:], negatives.view(len(batch), -1)], 1).reshape(-1)
        kept = [torch.rand(len(batch_users), generator=generator) >= own.dropout for _ in range(2)]
        scores = (model.encode(0, batch_users, kept[0]) * model.encode(1, batch_items, kept[1])).sum(1)
        return F.mse_loss(scores, (users[batch_users] * items[batch_items]).sum(1))

    def epoch() -> EpochLoss:
        return sgd_epoch(model, optimizer, torch.split(torch.randperm(len(pairs), generator=generator),
                                                       config.batch_size), loss)

    return fit_epochs(config, dataset, split, model, epoch, lambda: vector_scorer(model), reporter)
