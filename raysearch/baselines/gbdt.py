"""LightGBM binary classifier over (user, item) pairs: the attribute fields plus simple ID statistics.

Features: each categorical field's token (as a LightGBM categorical), multi-valued fields as multi-hot
columns, the user's and the item's training-interaction counts, and per multi-valued item field (genres)
the user's affinity: the mean share of their training items carrying each of the item's labels.
Hashed title words are left out (too sparse for trees). Statistics the protocol's held-out side cannot
have are left out too (item counts on item_cold; user counts and affinities on user_cold): trained on
them, the trees would lean on a feature that is always 0 for the entities scored. Trained on the
training pairs against ``num_negatives`` sampled negatives each, early-stopped on validation log-loss;
every candidate of a user batch is then scored.
"""

from __future__ import annotations

from typing import Sequence

import lightgbm
import numpy as np
import torch

from raysearch.config import TrainConfig
from raysearch.data.features import Field
from raysearch.data.movielens import Dataset
from raysearch.data.protocols import Split, eval_task
from raysearch.evaluation.scoring import Scorer
from raysearch.train.inputs import NegativeSampler, training_items
from raysearch.train.loop import Fitted, Reporter, fit_once


class PairFeatures:
    """Builds the feature rows of (user, item) pairs from per-entity tables."""

    def __init__(self, dataset: Dataset, train: np.ndarray, protocol: str) -> None:
        users, self.user_categorical = _entity_table(dataset.user_fields)
        items, self.item_categorical = _entity_table(dataset.item_fields)
        user_count = np.bincount(train[:, 0], minlength=dataset.num_users)
        item_count = np.bincount(train[:, 1], minlength=dataset.num_items)
        self.users = np.column_stack([users] + [user_count] * (protocol != "user_cold")).astype(np.float32)
        self.items = np.column_stack([items] + [item_count] * (protocol != "item_cold")).astype(np.float32)
        self.labels, self.shares = [], []  # per multi-valued item field: item label matrix, user shares
        multi = [f for f in dataset.item_fields if f.kind == "multi"] if protocol != "user_cold" else []
        for field in multi:
            labels = _multi_hot(field)
            counts = np.zeros((dataset.num_users, labels.shape[1]), dtype=np.float32)
            np.add.at(counts, train[:, 0], labels[train[:, 1]])
            self.shares.append(counts / np.maximum(user_count, 1)[:, None])
            self.labels.append(labels / np.maximum(labels.sum(1, keepdims=True), 1))
        self.categorical = (self.user_categorical
                            + [self.users.shape[1] + i for i in self.item_categorical])

    def pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Rows for aligned pairs: ``[n, features]``."""
        affinity = [(s[users] * l[items]).sum(1) for s, l in zip(self.shares, self.labels)]
        return np.column_stack([self.users[users], self.items[items], *affinity])

    def grid(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Rows for every user x item, user-major: ``[len(users) * len(items), features]``."""
        affinity = [(s[users] @ l[items].T).reshape(-1) for s, l in zip(self.shares, self.labels)]
        return np.column_stack([np.repeat(self.users[users], len(items), 0), np.tile(self.items[items], (len(users), 1)),
                                *affinity])


def _entity_table(fields: Sequence[Field]) -> tuple[np.ndarray, list[int]]:
    """Columns per entity: the first token of each categorical field, multi-hot for multi fields."""
    columns, categorical = [], []
    for field in fields:
        if field.kind == "categorical":
            categorical.append(len(columns))
            columns.append(field.tokens[field.offsets[:-1]])
        elif field.kind == "multi":
            columns += list(_multi_hot(field).T)
    return np.column_stack(columns), categorical


def _multi_hot(field: Field) -> np.ndarray:
    rows = np.repeat(np.arange(len(field.offsets) - 1), np.diff(field.offsets))
    hot = np.zeros((len(field.offsets) - 1, field.size), dtype=np.float32)
    hot[rows, field.tokens] = 1.0
    return hot[:, 1:]


def _labelled(features: PairFeatures, positives: np.ndarray, sampler: NegativeSampler, negatives: int,
              generator: torch.Generator) -> lightgbm.Dataset:
    users = np.repeat(positives[:, 0], 1 + negatives)
    drawn = sampler.sample(torch.as_tensor(positives[:, 0]).repeat(negatives, 1), generator).numpy()
    items = np.column_stack([positives[:, 1], drawn.T]).reshape(-1)
    labels = np.tile(np.r_[1.0, np.zeros(negatives)], len(positives))
    return lightgbm.Dataset(features.pairs(users, items), labels, categorical_feature=features.categorical,
                            free_raw_data=True)


def train(config: TrainConfig, dataset: Dataset, split: Split, reporter: Reporter | None = None) -> Fitted:
    return fit_once(config, dataset, split, lambda: boost(config, dataset, split), reporter)


def boost(config: TrainConfig, dataset: Dataset, split: Split) -> tuple[Scorer, dict]:
    """Fit the booster, early-stopped on the validation pairs' log-loss: its scorer and its model text."""
    generator = torch.Generator().manual_seed(config.seed)
    features = PairFeatures(dataset, split.train, split.protocol)
    train_sampler = NegativeSampler(split.train, training_items(dataset, split), dataset.num_items)
    valid_task = eval_task(split, "valid")
    candidates = np.arange(dataset.num_items) if valid_task.candidates is None else valid_task.candidates
    valid_sampler = NegativeSampler(np.concatenate([split.train, split.valid]), candidates, dataset.num_items)
    train_set = _labelled(features, split.train, train_sampler, config.num_negatives, generator)
    valid_set = _labelled(features, split.valid, valid_sampler, config.num_negatives, generator)
    booster = lightgbm.train(
        {"objective": "binary", "learning_rate": config.learning_rate, "num_leaves": config.settings.num_leaves,
         "seed": config.seed, "num_threads": torch.get_num_threads(), "verbose": -1, "deterministic": True,
         "force_row_wise": True},
        train_set, num_boost_round=config.settings.num_trees, valid_sets=[valid_set.set_reference(train_set)],
        callbacks=[lightgbm.early_stopping(20, verbose=False)])

    def score(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        rows = features.grid(users.numpy(), items.numpy())
        return torch.as_tensor(booster.predict(rows, raw_score=True), dtype=torch.float32).view(len(users), len(items))

    return score, {"booster": booster.model_to_string()}
