import math

import pytest
import torch

from raysearch.evaluation.metrics import ranking_sums, sampled_sums, top_hits


def test_two_users_with_several_positives():
    """User 0 scores items [0.9, 0.8, 0.7, 0.6, 0.5]; positives are items 1 and 3 (ranks 2 and 4).
    Top-3: hits at rank 2 only. Recall@3 = 1/2. DCG@3 = 1/log2(3); IDCG@3 = 1 + 1/log2(3)
    (2 positives), so NDCG@3 = 0.63093 / 1.63093 = 0.38685. MRR@3 = 1/2. Hit@3 = 1.
    User 1 scores the same; its single positive is item 4 (rank 5): every @3 metric is 0.
    At K=5: user 0 recall 1, DCG = 1/log2(3) + 1/log2(5), IDCG = 1 + 1/log2(3); user 1 recall 1,
    NDCG = (1/log2(6)) / 1, MRR@5 = 1/5.
    """
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]] * 2)
    positive = torch.tensor([[0, 1, 0, 1, 0], [0, 0, 0, 0, 1]], dtype=torch.bool)
    sums = ranking_sums(top_hits(scores, positive, 5), positive.sum(1), (3, 5))
    assert sums["recall@3"] == pytest.approx(0.5)
    assert sums["ndcg@3"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert sums["mrr@3"] == pytest.approx(0.5)
    assert sums["hit@3"] == 1
    ndcg0 = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert sums["ndcg@5"] == pytest.approx(ndcg0 + 1 / math.log2(6))
    assert sums["recall@5"] == pytest.approx(2.0)
    assert sums["mrr@5"] == pytest.approx(0.5 + 0.2)
    assert sums["hit@5"] == 2


def test_ties_rank_positives_after_equal_negatives():
    """All five items score 0. Pessimistic ties put every negative first: the positive (item 2) lands
    at rank 5, so Hit@3 = 0, MRR@5 = 1/5 and NDCG@5 = 1/log2(6).
    """
    scores = torch.zeros(1, 5)
    positive = torch.tensor([[0, 0, 1, 0, 0]], dtype=torch.bool)
    sums = ranking_sums(top_hits(scores, positive, 5), positive.sum(1), (3, 5))
    assert sums["hit@3"] == 0 and sums["mrr@5"] == pytest.approx(0.2)
    assert sums["ndcg@5"] == pytest.approx(1 / math.log2(6))


def test_partial_tie_and_excluded_items():
    """Scores [1, 0.5, 0.5, -inf(excluded), 0.2]; positive item 2 ties with negative item 1, so it ranks 3rd
    (after item 0 and item 1); the excluded item ranks last. Recall@2 = 0, Recall@3 = 1, MRR@3 = 1/3,
    NDCG@3 = 1/log2(4) = 0.5.
    """
    scores = torch.tensor([[1.0, 0.5, 0.5, -math.inf, 0.2]])
    positive = torch.tensor([[0, 0, 1, 0, 0]], dtype=torch.bool)
    sums = ranking_sums(top_hits(scores, positive, 3), positive.sum(1), (2, 3))
    assert sums["recall@2"] == 0 and sums["recall@3"] == 1
    assert sums["mrr@3"] == pytest.approx(1 / 3) and sums["ndcg@3"] == pytest.approx(0.5)


def test_ndcg_ideal_is_capped_at_k():
    """Four positives, all in the top 2 at K=2: IDCG@2 uses min(K, 4) = 2 ideal hits, so NDCG@2 = 1 while
    Recall@2 = 2/4."""
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]])
    positive = torch.tensor([[1, 1, 1, 1, 0]], dtype=torch.bool)
    sums = ranking_sums(top_hits(scores, positive, 2), positive.sum(1), (2,))
    assert sums["ndcg@2"] == pytest.approx(1.0) and sums["recall@2"] == pytest.approx(0.5)


def test_sampled_protocol():
    """User 0: positive 0.7 vs negatives [0.9, 0.1, 0.7]: one higher and one tie (counted against it),
    rank 3 -> HR@2 = 0, HR@3 = 1, NDCG@3 = 1/log2(4) = 0.5, MRR = 1/3.
    User 1: positive 1.0 beats all, rank 1 -> HR = 1, NDCG = 1, MRR = 1. Sums: HR@3 = 2, NDCG@3 = 1.5."""
    sums = sampled_sums(torch.tensor([0.7, 1.0]), torch.tensor([[0.9, 0.1, 0.7], [0.0, 0.1, 0.2]]), (2, 3))
    assert sums["sampled_hr@2"] == 1 and sums["sampled_hr@3"] == 2
    assert sums["sampled_ndcg@3"] == pytest.approx(1.5)
    assert sums["sampled_mrr"] == pytest.approx(1 + 1 / 3)
