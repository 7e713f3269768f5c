import numpy as np
import pytest
import torch

from raysearch.data.protocols import EvalTask
from raysearch.evaluation.scoring import by_part, evaluate, sampled_evaluate


def test_chunks_candidates_and_exclusions():
    """3 users, 4 items, scorer = item index (item 3 best). User 0: positive item 1, item 3 excluded
    -> ranking 2, 1, 0: rank 2, Hit@1 = 0, MRR@2 = 1/2. User 1: positive 3 -> rank 1. User 2: positives
    0 and 2 -> ranks 4 and 2 among [3, 2, 1, 0]: Recall@2 = 1/2. Means over 3 users."""
    task = EvalTask(users=np.array([0, 1, 2]), positives=np.array([[0, 1], [1, 3], [2, 0], [2, 2]]),
                    candidates=None, excluded=np.array([[0, 3]]))
    scorer = lambda users, items: items.float().expand(len(users), -1)  # noqa: E731
    for chunk in (1, 2, 3):
        m = evaluate(scorer, task, 4, (1, 2), chunk)
        assert m["hit@1"] == pytest.approx(1 / 3)
        assert m["mrr@2"] == pytest.approx((0.5 + 1 + 0.5) / 3)
        assert m["recall@2"] == pytest.approx((1 + 1 + 0.5) / 3)


def test_candidates_restrict_the_ranking():
    """Only items 0 and 1 are candidates: user 0's positive item 0 (score 0) ranks 2nd of 2, although
    items 2 and 3 score higher, they are not ranked."""
    task = EvalTask(np.array([0]), np.array([[0, 0]]), np.array([0, 1]), np.empty((0, 2), dtype=np.int64))
    m = evaluate(lambda u, i: i.float().expand(len(u), -1), task, 4, (1, 2), 8)
    assert m["hit@1"] == 0 and m["mrr@2"] == pytest.approx(0.5)


def test_sampled_negatives_avoid_known_items():
    """User 0 knows items 0-4; its positive is item 4 and every other item scores below it, except the
    known items 0-3, which score higher but can never be drawn as negatives -> rank 1 every time."""
    known = np.array([[0, i] for i in range(5)])
    task = EvalTask(np.array([0]), np.array([[0, 4]]), None, known)
    scores = torch.tensor([10.0, 10.0, 10.0, 10.0, 5.0] + [0.0] * 195)
    m = sampled_evaluate(lambda u, i: scores[i].expand(len(u), -1), task, known, 200, (1,), seed=0)
    assert m["sampled_hr@1"] == 1 and m["sampled_mrr"] == 1


def test_by_part_prefixes_each_part_and_means_them():
    """Item 3 scores best. Part a: user 0's positive is item 3 (rank 1, Hit@1 = 1); part b: user 1's positive
    item 0 among candidates [0, 1] ranks 2 (Hit@1 = 0, MRR@2 = 1/2). Their means: Hit@1 1/2, MRR@2 3/4."""
    none = np.empty((0, 2), dtype=np.int64)
    tasks = {"a_": EvalTask(np.array([0]), np.array([[0, 3]]), None, none),
             "b_": EvalTask(np.array([1]), np.array([[1, 0]]), np.array([0, 1]), none)}
    scorer = lambda users, items: items.float().expand(len(users), -1)  # noqa: E731
    metrics = by_part(tasks, lambda task: evaluate(scorer, task, 4, (1, 2), 8))
    assert metrics["a_hit@1"] == 1 and metrics["b_hit@1"] == 0 and metrics["b_mrr@2"] == pytest.approx(0.5)
    assert metrics["hit@1"] == pytest.approx(0.5) and metrics["mrr@2"] == pytest.approx(0.75)
    assert by_part({"": tasks["a_"]}, lambda task: evaluate(scorer, task, 4, (1,), 8)) == evaluate(scorer, tasks["a_"], 4, (1,), 8)
