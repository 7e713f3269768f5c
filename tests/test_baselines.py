"""Every registered model trains on a small two-taste graph and ranks better than random, through one
evaluation path; a model that cannot place the held-out entities says so."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from raysearch.compare import runner
from raysearch.compare.plan import Job
from raysearch.config import TrainConfig
from raysearch.data import features
from raysearch.data.protocols import eval_task, make_split
from raysearch.errors import ConfigError
from raysearch.evaluation.scoring import evaluate
from raysearch.registry import MODELS
from raysearch.testing.datasets import tiny_dataset
from raysearch.train import loop

SMALL = {"embedding_dim": 8, "batch_size": 64, "epochs": 40, "patience": 10, "topk": [5], "metric": "ndcg@5",
         "eval_batch_users": 16, "text_buckets": 16, "learning_rate": 0.05}
OWN = {"deepfm": {"mlp_dims": [16]}, "lightgbm": {"num_trees": 50, "num_leaves": 4, "learning_rate": 0.2},
       "autorec": {"embedding_dim": 16, "batch_size": 8}, "duif": {"hidden": 16}, "clcrec": {"hidden": 16},
       "dropoutnet": {"hidden": [16], "backbone_epochs": 20}, "content_knn": {"neighbours": [3, 10]}}
ATTRIBUTE_AWARE = ("fusion_gcn", "deepfm", "lightgbm", "duif", "clcrec", "dropoutnet", "content_knn")


@pytest.fixture(scope="module")
def taste():
    return tiny_dataset(num_users=40, num_items=30, skew=0.8)


def small_config(model: str, split: str, **changes) -> TrainConfig:
    return TrainConfig.from_dict({**SMALL, **OWN.get(model, {}), "model": model, "split": split, "seed": 3, **changes})


def random_ndcg(dataset, split, repeats: int = 64) -> float:
    task = eval_task(split, "test")
    values = []
    for r in range(repeats):
        generator = torch.Generator().manual_seed(r)
        table = torch.rand(dataset.num_users, dataset.num_items, generator=generator)
        values.append(evaluate(lambda u, i: table[u][:, i], task, dataset.num_items, (5,), 16)["ndcg@5"])
    return float(np.mean(values))


def trained_ndcg(config: TrainConfig, dataset) -> tuple[float, float]:
    split = make_split(dataset, config.split, config.seed)
    fitted = config.spec.train(config, dataset, split)
    assert fitted.checkpoint["state_dict"] and fitted.best_epoch >= 1
    return evaluate(fitted.scorer, eval_task(split, "test"), dataset.num_items, (5,), 16)["ndcg@5"], \
        random_ndcg(dataset, split)


@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_beats_random_on_warm(taste, model):
    ndcg, random = trained_ndcg(small_config(model, "warm"), taste)
    assert ndcg > 1.2 * random


@pytest.mark.parametrize("split_name", ["item_cold", "user_cold"])
@pytest.mark.parametrize("model", ATTRIBUTE_AWARE)
def test_attribute_models_beat_random_on_cold_splits(taste, model, split_name):
    ndcg, random = trained_ndcg(small_config(model, split_name), taste)
    assert ndcg > random


@pytest.mark.parametrize("model", ATTRIBUTE_AWARE)
def test_attribute_models_rank_cold_items_with_anonymous_users(taste, model):
    """ML-10M/20M/25M and synthetic sets have no user attributes: one anonymous field, the same token for all."""
    anonymous = dataclasses.replace(taste, user_fields=(features.categorical("anonymous", [""] * taste.num_users),))
    ndcg, random = trained_ndcg(small_config(model, "item_cold", user_fields=["anonymous"]), anonymous)
    assert ndcg > random


@pytest.mark.parametrize("model,split,ok", [
    ("mf", "item_cold", False), ("mf", "user_cold", False), ("lightgcn", "item_cold", False),
    ("autorec", "user_cold", False), ("popularity", "item_cold", False), ("popularity", "user_cold", True),
    ("deepfm", "item_cold", True), ("lightgbm", "user_cold", True), ("fusion_gcn", "item_cold", True),
])
def test_id_only_models_refuse_cold_entities(taste, model, split, ok):
    config = small_config(model, split)
    assert config.can_score() is ok
    if not ok:
        with pytest.raises(ConfigError, match="needs interactions"):
            config.spec.train(config, taste, make_split(taste, split, 1))
        row, weights = runner.run_job(Job("models", model, config), None, 1)
        assert row["status"] == "n/a (needs interactions)" and "ndcg@5" not in row and weights == []


def test_every_model_is_scored_by_the_one_evaluation_function(taste, monkeypatch):
    """Validation (early stopping) and test scoring of every model go through ``ranking_totals`` (test scoring
    through ``evaluate``, its mean)."""
    calls = []

    def spy(real):
        def scored(scorer, task, *args, **kwargs):
            calls.append(task)
            return real(scorer, task, *args, **kwargs)
        return scored

    monkeypatch.setattr("raysearch.compare.runner.evaluate", spy(runner.evaluate))
    monkeypatch.setattr("raysearch.train.loop.ranking_totals", spy(loop.ranking_totals))
    for model in MODELS:
        before = len(calls)
        row, _ = runner.score_job(Job("models", model, small_config(model, "warm", epochs=2)), taste, {})
        assert row["status"] == "ok"
        assert len(calls) - before == row["epochs_run"] + 1  # one validation per epoch, one test


SPECIALISTS = ("duif", "clcrec", "dropoutnet", "content_knn")


def coarse(dataset):
    """``dataset`` with one attribute field per side (taste group / genres): entities of a group share their
    content exactly, so content alone cannot tell them apart."""
    return dataclasses.replace(dataset, user_fields=dataset.user_fields[:1], item_fields=dataset.item_fields[:1])


@pytest.mark.parametrize("split_name", ["item_cold", "user_cold"])
@pytest.mark.parametrize("model", SPECIALISTS)
def test_specialists_score_cold_entities_from_content_only(taste, model, split_name):
    """Cold entities with the same attributes get the same scores: nothing but content reaches them."""
    dataset = coarse(taste)
    split = make_split(dataset, split_name, 3)
    fitted = small_config(model, split_name).spec.train(small_config(model, split_name), dataset, split)
    scores = fitted.scorer(torch.arange(dataset.num_users), torch.arange(dataset.num_items))
    if split_name == "user_cold":
        scores, fields, cold = scores.T, dataset.user_fields[0], split.cold_users["test"]
    else:
        fields, cold = dataset.item_fields[0], split.cold_items["test"]
    groups = {}
    for entity in cold:
        groups.setdefault(tuple(fields.bag(int(entity))), []).append(int(entity))
    tied = [members for members in groups.values() if len(members) > 1]
    assert tied
    for members in tied:
        torch.testing.assert_close(scores[:, members], scores[:, members[:1]].expand(-1, len(members)))


@pytest.mark.parametrize("split_name", ["item_cold", "user_cold"])
@pytest.mark.parametrize("model", SPECIALISTS)
def test_specialists_use_no_interaction_of_a_cold_entity(taste, model, split_name):
    """Changing every interaction outside the training part changes nothing the trained model scores."""
    split = make_split(taste, split_name, 3)
    held_out = np.concatenate([split.valid, split.test])
    moved = held_out.copy()
    moved[:, 0] = (moved[:, 0] + 1) % taste.num_users
    other = dataclasses.replace(taste, interactions=np.unique(np.concatenate([split.train, moved]), axis=0))
    config = small_config(model, split_name, epochs=3)
    users, items = torch.arange(taste.num_users), torch.arange(taste.num_items)
    first, second = (config.spec.train(config, data, split).scorer(users, items) for data in (taste, other))
    torch.testing.assert_close(first, second)


@pytest.mark.parametrize("model", ["duif", "clcrec", "dropoutnet"])
def test_specialists_training_loss_decreases(taste, model):
    config = small_config(model, "item_cold", epochs=15, patience=15)
    fitted = config.spec.train(config, taste, make_split(taste, "item_cold", 3))
    losses = [row["loss"] for row in fitted.history]
    assert len(losses) == 15 and losses[-1] < 0.8 * losses[0]
