"""Content-KNN: scores derived by hand, and k picked on the validation part."""

from __future__ import annotations

import torch

from raysearch.baselines.content_knn import knn_scores


def test_item_knn_sums_the_similarity_of_a_users_nearest_items():
    similarity = torch.tensor([[0.0, 0.9, 0.2],
                               [0.9, 0.0, 0.5],
                               [0.2, 0.5, 0.0]])
    interactions = torch.tensor([[1.0, 0.0, 1.0],   # user 0 had items 0 and 2
                                 [0.0, 1.0, 0.0]])  # user 1 had item 1
    scores = knn_scores(similarity, interactions, k=1, side="items")
    # item 0's nearest item is 1 (0.9), item 1's is 0 (0.9), item 2's is 1 (0.5)
    torch.testing.assert_close(scores, torch.tensor([[0.0, 0.9, 0.0], [0.9, 0.0, 0.5]]))
    scores = knn_scores(similarity, interactions, k=2, side="items")
    torch.testing.assert_close(scores, torch.tensor([[0.2, 1.4, 0.2], [0.9, 0.0, 0.5]]))


def test_user_knn_sums_the_similarity_of_the_nearest_users_who_had_the_item():
    similarity = torch.tensor([[0.0, 0.8, 0.1],
                               [0.8, 0.0, 0.3],
                               [0.1, 0.3, 0.0]])
    interactions = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    scores = knn_scores(similarity, interactions, k=1, side="users")
    torch.testing.assert_close(scores, torch.tensor([[0.8, 0.8], [0.8, 0.0], [0.3, 0.3]]))
