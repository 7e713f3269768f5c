"""Most-popular: every user gets the items with the most training interactions."""

from __future__ import annotations

import torch

from raysearch.config import TrainConfig
from raysearch.data.movielens import Dataset
from raysearch.data.protocols import Split
from raysearch.evaluation.scoring import Scorer
from raysearch.train.loop import Fitted, Reporter, fit_once


def train(config: TrainConfig, dataset: Dataset, split: Split, reporter: Reporter | None = None) -> Fitted:
    def fit() -> tuple[Scorer, dict]:
        counts = torch.bincount(torch.as_tensor(split.train[:, 1]), minlength=dataset.num_items).float()
        return (lambda users, items: counts[items].expand(len(users), -1)), {"counts": counts}

    return fit_once(config, dataset, split, fit, reporter)
