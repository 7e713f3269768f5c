"""Seeded evaluation protocols (warm, item_cold, user_cold) and what each part is ranked against.

Splits are stored as JSON in original ids by :mod:`raysearch.data.split_files`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raysearch.data.movielens import Dataset

PARTS = ("valid", "test")


@dataclass(frozen=True)
class Split:
    """Train/valid/test interactions (index pairs) of one protocol, plus the cold entities per part."""

    protocol: str
    seed: int | None  # the seed that drew it (None: read from a file that names none)
    train: np.ndarray  # int64 [n, 2] (user, item) pairs in the training graph
    valid: np.ndarray
    test: np.ndarray
    cold_users: dict[str, np.ndarray]  # part -> user indices that are cold in that part (user_cold)
    cold_items: dict[str, np.ndarray]  # part -> item indices that are cold in that part (item_cold)

    def part(self, name: str) -> np.ndarray:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]


@dataclass(frozen=True)
class EvalTask:
    """Who is scored on a part, against which candidates, with which items excluded."""

    users: np.ndarray  # int64 [U] users with at least one positive in the part
    positives: np.ndarray  # int64 [n, 2] the part's (user, item) pairs
    candidates: np.ndarray | None  # int64 [C] items ranked (None: all items)
    excluded: np.ndarray  # int64 [m, 2] (user, item) pairs never ranked (the user's known items)


def make_split(dataset: Dataset, protocol: str, seed: int) -> Split:
    """Draw the protocol's split; the same dataset, protocol and seed always give the same split."""
    rng = np.random.default_rng(seed)
    pairs = dataset.interactions
    if protocol == "warm":
        return _warm(pairs, rng, seed)
    count = {"item_cold": dataset.num_items, "user_cold": dataset.num_users}[protocol]
    cold = rng.permutation(count)[: round(0.2 * count)]
    half = len(cold) // 2
    return cold_split(dataset, protocol, {"valid": np.sort(cold[:half]), "test": np.sort(cold[half:])}, seed)


def cold_split(dataset: Dataset, protocol: str, groups: dict[str, np.ndarray], seed: int | None) -> Split:
    """An item_cold/user_cold split from its cold entities per part (``groups``, sorted indices): every
    interaction of a part's cold entities goes to that part, every other interaction to train."""
    column = {"item_cold": 1, "user_cold": 0}[protocol]
    pairs = dataset.interactions
    parts = {k: pairs[np.isin(pairs[:, column], v)] for k, v in groups.items()}
    empty = {k: np.empty(0, dtype=np.int64) for k in PARTS}
    return Split(protocol, seed, pairs[~np.isin(pairs[:, column], np.concatenate(list(groups.values())))],
                 parts["valid"], parts["test"],
                 cold_users=groups if column == 0 else empty, cold_items=groups if column == 1 else empty)


def _warm(pairs: np.ndarray, rng: np.random.Generator, seed: int) -> Split:
    """Per user, a random 80/10/10 split; sizes follow RecBole (valid = test = floor(10%), at least 1)."""
    order = rng.permutation(len(pairs))
    shuffled = pairs[order[np.argsort(pairs[order, 0], kind="stable")]]
    starts = np.r_[0, np.flatnonzero(np.diff(shuffled[:, 0])) + 1]
    counts = np.diff(np.r_[starts, len(shuffled)])
    held = np.where(counts >= 3, np.maximum(counts // 10, 1), 0)
    rank = np.arange(len(shuffled)) - np.repeat(starts, counts)
    tail = rank - np.repeat(counts - 2 * held, counts)
    empty = {k: np.empty(0, dtype=np.int64) for k in PARTS}
    return Split("warm", seed, shuffled[tail < 0], shuffled[(tail >= 0) & (tail < np.repeat(held, counts))],
                 shuffled[tail >= np.repeat(held, counts)], cold_users=empty, cold_items=empty)


def eval_task(split: Split, part: str) -> EvalTask:
    """The ranking task of ``part``: warm users rank all items except what they already had;
    item_cold users rank the part's cold items; cold users rank all items with nothing known."""
    positives = split.part(part)
    none = np.empty((0, 2), dtype=np.int64)
    if split.protocol == "warm":
        excluded = split.train if part == "valid" else np.concatenate([split.train, split.valid])
        return EvalTask(np.unique(positives[:, 0]), positives, None, excluded)
    candidates = split.cold_items[part] if split.protocol == "item_cold" else None
    return EvalTask(np.unique(positives[:, 0]), positives, candidates, none)

