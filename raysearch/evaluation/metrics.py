"""Top-K ranking metrics, vectorised in torch, summed per user so chunks and ranks can be added up.

Definitions follow RecBole (names: :data:`raysearch.config.METRIC_NAMES`): Recall@K = hits in top K /
#positives; NDCG@K = DCG@K / ideal DCG@K with min(K, #positives) ideal hits; MRR@K = 1 / rank of the first
hit in the top K (0 if none); Hit@K = 1 if any positive is in the top K. Ties are broken pessimistically: a positive tied with a non-positive
ranks after it, so a model that scores everything alike earns nothing.
"""

from __future__ import annotations

from typing import Iterable

import torch


def top_hits(scores: torch.Tensor, positive: torch.Tensor, k: int) -> torch.Tensor:
    """Bool [B, k]: whether the item at each of the top-k ranks is a positive.

    scores: float [B, C] (excluded items set to -inf); positive: bool [B, C].
    """
    negatives_first = torch.sort(positive.to(torch.uint8), dim=1, stable=True).indices
    by_score = torch.sort(scores.gather(1, negatives_first), dim=1, descending=True, stable=True).indices
    top = negatives_first.gather(1, by_score[:, :k])
    return positive.gather(1, top)


def ranking_sums(hits: torch.Tensor, num_positives: torch.Tensor, ks: Iterable[int]) -> dict[str, float]:
    """Per-metric sums over the users of a chunk (divide by the user count for the mean).

    hits: bool [B, max(ks)] from :func:`top_hits`; num_positives: int [B], each >= 1.
    """
    hits = hits.double()
    ranks = torch.arange(1, hits.shape[1] + 1, dtype=torch.float64)
    discount = 1.0 / torch.log2(ranks + 1)
    sums = {}
    for k in ks:
        top = hits[:, :k]
        ideal = torch.cumsum(discount[:k], 0)[(num_positives.clamp(max=k) - 1)]
        first = torch.where(top.any(1), top.argmax(1).double() + 1, torch.inf)
        sums[f"recall@{k}"] = (top.sum(1) / num_positives).sum().item()
        sums[f"ndcg@{k}"] = ((top * discount[:k]).sum(1) / ideal).sum().item()
        sums[f"mrr@{k}"] = (1.0 / first).sum().item()
        sums[f"hit@{k}"] = top.any(1).double().sum().item()
    return sums


def sampled_sums(positive_scores: torch.Tensor, negative_scores: torch.Tensor, ks: Iterable[int]) -> dict[str, float]:
    """Sampled protocol: each user's one held-out positive ranked among its sampled negatives.

    positive_scores: float [B]; negative_scores: float [B, N] (e.g. N = 99). Ties count against the
    positive. Returns sums of HR@K, NDCG@K and MRR (no cut-off) over the B users.
    """
    rank = 1 + (negative_scores >= positive_scores[:, None]).sum(1).double()
    sums = {"sampled_mrr": (1.0 / rank).sum().item()}
    for k in ks:
        inside = rank <= k
        sums[f"sampled_hr@{k}"] = inside.double().sum().item()
        sums[f"sampled_ndcg@{k}"] = torch.where(inside, 1.0 / torch.log2(rank + 1), 0.0).sum().item()
    return sums


def add_sums(total: dict[str, float], part: dict[str, float]) -> dict[str, float]:
    return {k: total.get(k, 0.0) + v for k, v in part.items()}
