"""Scoring an evaluation task with any model: one code path for the full and the sampled protocol.

A scorer maps user indices ``[B]`` and item indices ``[C]`` to scores ``[B, C]``; the model, and any
baseline, only has to provide that.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np
import torch

from raysearch.data.protocols import EvalTask
from raysearch.evaluation.metrics import add_sums, ranking_sums, sampled_sums, top_hits

Scorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def by_part(tasks: Mapping[str, EvalTask], score: Callable[[EvalTask], dict[str, float]]) -> dict[str, float]:
    """``score`` of each task (:func:`~raysearch.data.protocols.eval_tasks`) under its prefix and, with several
    (a mixed split's parts), their mean under the plain names: warm and cold count alike in it."""
    scored = {prefix: score(task) for prefix, task in tasks.items()}
    metrics = {f"{prefix}{k}": v for prefix, values in scored.items() for k, v in values.items()}
    if len(scored) > 1:
        shared = set.intersection(*(set(values) for values in scored.values()))
        metrics |= {k: sum(values[k] for values in scored.values()) / len(scored) for k in sorted(shared)}
    return metrics


def evaluate(scorer: Scorer, task: EvalTask, num_items: int, ks: tuple[int, ...], chunk_users: int) -> dict[str, float]:
    """Full-ranking metrics of ``task`` averaged over its users, scoring ``chunk_users`` users at a time."""
    sums = ranking_totals(scorer, task, num_items, ks, chunk_users)
    return {k: v / len(task.users) for k, v in sums.items()}


@torch.no_grad()
def ranking_totals(scorer: Scorer, task: EvalTask, num_items: int, ks: tuple[int, ...],
                   chunk_users: int) -> dict[str, float]:
    """Full-ranking metric sums over ``task``'s users (every key present, 0 without users), so the parts
    of a task scored apart (on data-parallel ranks, say) add up to the whole."""
    items = torch.as_tensor(np.arange(num_items) if task.candidates is None else task.candidates)
    column = torch.full((num_items,), -1, dtype=torch.long)
    column[items] = torch.arange(len(items))
    users = torch.as_tensor(task.users)
    positives = _rows_and_columns(task.positives, users, column)
    excluded = _rows_and_columns(task.excluded, users, column)
    sums = ranking_sums(torch.zeros(0, max(ks), dtype=torch.bool), torch.ones(0, dtype=torch.long), ks)
    for start in range(0, len(users), chunk_users):
        stop = min(start + chunk_users, len(users))
        scores = scorer(users[start:stop], items).clone()
        scores[_chunk_index(excluded, start, stop)] = -math.inf
        positive = torch.zeros_like(scores, dtype=torch.bool)
        positive[_chunk_index(positives, start, stop)] = True
        hits = top_hits(scores, positive, max(ks))
        sums = add_sums(sums, ranking_sums(hits, positive.sum(1), ks))
    return sums


@torch.no_grad()
def sampled_evaluate(scorer: Scorer, task: EvalTask, known: np.ndarray, num_items: int, ks: tuple[int, ...],
                     seed: int, num_negatives: int = 99) -> dict[str, float]:
    """Sampled protocol: per user one random positive of the part vs ``num_negatives`` random candidates
    the user never interacted with (``known``: all of the dataset's pairs; drawn with replacement when
    fewer remain). Users who interacted with every candidate are skipped."""
    rng = np.random.default_rng(seed)
    candidates = np.arange(num_items) if task.candidates is None else task.candidates
    known = known[np.argsort(known[:, 0], kind="stable")]
    part = task.positives[np.argsort(task.positives[:, 0], kind="stable")]
    starts = np.searchsorted(part[:, 0], task.users)
    counts = np.searchsorted(part[:, 0], task.users, side="right") - starts
    picked = part[starts + rng.integers(0, counts), 1]
    bounds = np.searchsorted(known[:, 0], np.stack([task.users, task.users + 1]))
    allowed = [np.setdiff1d(candidates, known[lo:hi, 1]) for lo, hi in bounds.T]
    scored = np.array([len(a) > 0 for a in allowed])
    if not scored.any():
        return {}
    negatives = torch.as_tensor(np.stack([rng.choice(a, num_negatives, replace=len(a) < num_negatives)
                                          for a, ok in zip(allowed, scored) if ok]))
    scores = scorer(torch.as_tensor(task.users[scored]), torch.arange(num_items))
    positive_scores = scores.gather(1, torch.as_tensor(picked[scored]).unsqueeze(1)).squeeze(1)
    sums = sampled_sums(positive_scores, scores.gather(1, negatives), ks)
    return {k: v / int(scored.sum()) for k, v in sums.items()}


def _rows_and_columns(pairs: np.ndarray, users: torch.Tensor, column: torch.Tensor) -> torch.Tensor:
    """(row in ``users``, candidate column) of the pairs whose user is scored and whose item is a
    candidate, sorted by row: int [n, 2]."""
    pairs = torch.as_tensor(pairs, dtype=torch.long).reshape(-1, 2)
    rows = torch.searchsorted(users.contiguous(), pairs[:, 0].contiguous()).clamp(max=len(users) - 1)
    cols = column[pairs[:, 1]]
    keep = (users[rows] == pairs[:, 0]) & (cols >= 0)
    found = torch.stack([rows[keep], cols[keep]], 1)
    return found[torch.argsort(found[:, 0], stable=True)]


def _chunk_index(pairs: torch.Tensor, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    lo, hi = torch.searchsorted(pairs[:, 0].contiguous(), torch.tensor([start, stop])).tolist()
    return pairs[lo:hi, 0] - start, pairs[lo:hi, 1]
