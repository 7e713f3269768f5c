"""Content-KNN: the simplest non-learned cold-start reference, neighbours by attribute similarity.

Content vectors (:func:`~raysearch.data.features.content_matrix`, L2-normalised) give the cosine
similarity of every entity to the entities with training pairs. On the item side (item_cold and warm) an
item scores for a user the summed similarity of its ``k`` nearest training items that the user interacted
with (item-KNN over content); on the user side (user_cold) a user scores an item by the summed similarity
of its ``k`` nearest training users who interacted with it (user-KNN over demographics). ``k`` is chosen
from ``neighbours`` on the validation part, as early stopping picks epochs for the learned models.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from raysearch.baselines.content import content_side, has_training
from raysearch.config import TrainConfig
from raysearch.data.features import content_matrix
from raysearch.data.movielens import Dataset
from raysearch.data.protocols import Split, eval_task
from raysearch.evaluation.scoring import Scorer, evaluate
from raysearch.train.loop import Fitted, Reporter, fit_once


def similarities(dataset: Dataset, split: Split) -> torch.Tensor:
    """Cosine similarity ``[n, n]`` of the content side's entities to those with training pairs (0 elsewhere
    and on the diagonal)."""
    side = content_side(split)
    vectors = F.normalize(content_matrix(dataset.item_fields if side == "items" else dataset.user_fields), dim=1)
    similarity = vectors @ vectors.T
    similarity.fill_diagonal_(0.0)
    return similarity * has_training(split.train, len(vectors), 1 if side == "items" else 0).unsqueeze(0)


def knn_scores(similarity: torch.Tensor, interactions: torch.Tensor, k: int, side: str) -> torch.Tensor:
    """Scores ``[U, I]`` from each entity's ``k`` most similar neighbours (ties at the k-th value kept)."""
    kth = similarity.topk(min(k, similarity.shape[1]), dim=1).values[:, -1:]
    nearest = similarity * (similarity >= kth) * (similarity > 0)
    return interactions @ nearest.T if side == "items" else nearest @ interactions


def train(config: TrainConfig, dataset: Dataset, split: Split, reporter: Reporter | None = None) -> Fitted:
    def fit() -> tuple[Scorer, dict]:
        side = content_side(split)
        similarity = similarities(dataset, split)
        interactions = torch.zeros(dataset.num_users, dataset.num_items)
        interactions[torch.as_tensor(split.train[:, 0]), torch.as_tensor(split.train[:, 1])] = 1.0
        task = eval_task(split, "valid")
        best = None
        for k in config.settings.neighbours:
            scores = knn_scores(similarity, interactions, k, side)
            value = evaluate(lambda u, i: scores[u][:, i], task, dataset.num_items, config.topk,
                             config.eval_batch_users)[config.metric]
            if best is None or value > best[0]:
                best = (value, k, scores)
        _, k, scores = best
        return (lambda u, i: scores[u][:, i]), {"neighbours": torch.tensor(k)}

    return fit_once(config, dataset, split, fit, reporter)
