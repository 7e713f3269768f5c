"""Most-popular: every user gets the items with the most training interactions."""

from __future__ import annotations

import time

import torch

from raysearch.baselines.loop import Fitted, single_report
from raysearch.config import TrainConfig
from raysearch.data import Dataset
from raysearch.splits import Split


def train(config: TrainConfig, dataset: Dataset, split: Split, reporter=None) -> Fitted:
    started = time.perf_counter()
    counts = torch.bincount(torch.as_tensor(split.train[:, 1]), minlength=dataset.num_items).float()
    scorer = lambda users, items: counts[items].expand(len(users), -1)  # noqa: E731
    return single_report(config, dataset, split, scorer, {"counts": counts}, time.perf_counter() - started, reporter)
