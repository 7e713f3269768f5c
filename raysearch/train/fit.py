"""Train any registered model in-process and score its best epoch on the test part."""

from __future__ import annotations

from dataclasses import dataclass

from raysearch.config import TrainConfig
from raysearch.data.movielens import Dataset
from raysearch.data.protocols import Split, eval_tasks
from raysearch.evaluation.scoring import Scorer, by_part, evaluate, sampled_evaluate
from raysearch.train.loop import Reporter


@dataclass(frozen=True)
class FitResult:
    best_epoch: int
    valid: dict[str, float]  # validation metrics of the best epoch
    test: dict[str, float]  # test metrics of the best epoch's model (full ranking and sampled)
    history: list[dict[str, float]]  # one row of metrics per epoch run
    checkpoint: dict  # the best epoch's checkpoint


def fit(config: TrainConfig, dataset: Dataset, split: Split, reporter: Reporter | None = None) -> FitResult:
    """Train ``config.model`` (its registry trainer) with early stopping on ``config.metric``, then score the
    best epoch's model on test."""
    fitted = config.spec.train(config, dataset, split, reporter)
    best = next(row for row in fitted.history if row["epoch"] == fitted.best_epoch)
    valid = {k.removeprefix("valid_"): v for k, v in best.items() if k.startswith("valid_")}
    return FitResult(fitted.best_epoch, valid, final_metrics(fitted.scorer, dataset, split, config), fitted.history,
                     fitted.checkpoint)


def final_metrics(scorer: Scorer, dataset: Dataset, split: Split, config: TrainConfig) -> dict[str, float]:
    """Full-ranking and sampled (1 positive + 99 negatives) metrics on the test part (a mixed split's by part)."""
    return by_part(eval_tasks(split, "test", dataset.num_items), lambda task: {
        **evaluate(scorer, task, dataset.num_items, config.topk, config.eval_batch_users),
        **sampled_evaluate(scorer, task, dataset.interactions, dataset.num_items, config.topk, config.seed)})
