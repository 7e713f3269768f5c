"""Seeded evaluation protocols (warm, item_cold, user_cold, mixed) and what each part is ranked against.

``mixed`` serves warm and cold at once: 20% of the items are cold as in ``item_cold`` (optionally a share of
the users too, as in ``user_cold``), and the interactions between warm users and warm items are split per user
as in ``warm``. A mixed part is scored as three sub-parts (:func:`eval_tasks`), each ranked exactly as its own
protocol ranks it, over the warm items (the cold items are the item-cold sub-part's candidates only).
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


COLD_SHARE = 0.2  # share of the items (item_cold, mixed) or users (user_cold) held out, half valid, half test


def make_split(dataset: Dataset, protocol: str, seed: int, cold_user_share: float = 0.0) -> Split:
    """Draw the protocol's split (``cold_user_share``: the users held out by ``mixed``); the same arguments
    always give the same split."""
    rng = np.random.default_rng(seed)
    pairs = dataset.interactions
    if protocol == "warm":
        return _warm(pairs, rng, seed)
    if protocol == "mixed":
        items = _cold_groups(rng, dataset.num_items, COLD_SHARE)
        return mixed_split(dataset, items, _cold_groups(rng, dataset.num_users, cold_user_share), rng, seed)
    count = {"item_cold": dataset.num_items, "user_cold": dataset.num_users}[protocol]
    return cold_split(dataset, protocol, _cold_groups(rng, count, COLD_SHARE), seed)


def _cold_groups(rng: np.random.Generator, count: int, share: float) -> dict[str, np.ndarray]:
    """A random ``share`` of ``count`` entities, the first half cold in valid, the rest in test (sorted)."""
    cold = rng.permutation(count)[: round(share * count)]
    half = len(cold) // 2
    return {"valid": np.sort(cold[:half]), "test": np.sort(cold[half:])}


def mixed_split(dataset: Dataset, cold_items: dict[str, np.ndarray], cold_users: dict[str, np.ndarray],
                rng: np.random.Generator, seed: int | None) -> Split:
    """A mixed split from its cold entities per part: a cold user's interactions with warm items go to the
    user's part, a warm user's interactions with a cold item to the item's part (an interaction of a cold
    user with a cold item is left out: neither sub-protocol can rank it), and the warm users' interactions
    with warm items are split per user as in ``warm``."""
    pairs = dataset.interactions
    item_part, user_part = _part_of(cold_items, dataset.num_items), _part_of(cold_users, dataset.num_users)
    item_cold, user_cold = item_part[pairs[:, 1]] >= 0, user_part[pairs[:, 0]] >= 0
    warm = _warm(pairs[~item_cold & ~user_cold], rng, seed)
    parts = {}
    for index, name in enumerate(PARTS):
        held = ((item_part[pairs[:, 1]] == index) & ~user_cold) | ((user_part[pairs[:, 0]] == index) & ~item_cold)
        parts[name] = np.concatenate([warm.part(name), pairs[held]])
    return Split("mixed", seed, warm.train, parts["valid"], parts["test"], cold_users, cold_items)


def _part_of(groups: dict[str, np.ndarray], count: int) -> np.ndarray:
    """For each of ``count`` entities, the index in :data:`PARTS` of the part it is cold in, else -1."""
    part = np.full(count, -1)
    for index, name in enumerate(PARTS):
        part[groups[name]] = index
    return part


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


def eval_tasks(split: Split, part: str, num_items: int) -> dict[str, EvalTask]:
    """The ranking tasks of ``part`` by metric prefix: ``{"": task}`` for a single protocol; for ``mixed``
    its sub-parts, ``warm_``, ``item_cold_`` and (with cold users) ``user_cold_``, each ranked as its own
    protocol ranks it, with the cold items among the item-cold sub-part's candidates only."""
    if split.protocol != "mixed":
        return {"": eval_task(split, part)}
    positives = split.part(part)
    cold_items, cold_users = (np.concatenate([groups[p] for p in PARTS]) for groups in (split.cold_items,
                                                                                         split.cold_users))
    warm_items = np.setdiff1d(np.arange(num_items), cold_items)
    cold_item, cold_user = np.isin(positives[:, 1], cold_items), np.isin(positives[:, 0], cold_users)
    none = np.empty((0, 2), dtype=np.int64)
    warm = positives[~cold_item & ~cold_user]
    known = split.train if part == "valid" else np.concatenate([split.train, split.valid])
    tasks = {"warm_": _task(warm, warm_items, known), "item_cold_": _task(positives[cold_item], split.cold_items[part], none)}
    if len(cold_users):
        tasks["user_cold_"] = _task(positives[cold_user], warm_items, none)
    return tasks


def _task(positives: np.ndarray, candidates: np.ndarray | None, excluded: np.ndarray) -> EvalTask:
    """Score the users of ``positives`` on ``candidates`` (None: all items), never ranking ``excluded``."""
    return EvalTask(np.unique(positives[:, 0]), positives, candidates, excluded)


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

