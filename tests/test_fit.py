import pytest
import torch

from raysearch.config import TrainConfig
from raysearch.data.protocols import eval_task, make_split
from raysearch.errors import ConfigError
from raysearch.evaluation.scoring import evaluate
from raysearch.train.fit import fit

SMALL = {"topk": [5], "metric": "ndcg@5", "epochs": 3, "embedding_dim": 8, "batch_size": 64}


def test_fit_trains_any_registered_model_and_scores_its_best_epoch(tiny):
    split = make_split(tiny, "user_cold", 2)
    config = TrainConfig.from_dict({"model": "popularity", **SMALL, "split": "user_cold"})
    result = fit(config, tiny, split)
    assert result.best_epoch == 1 and result.valid == {k[6:]: v for k, v in result.history[0].items()
                                                       if k.startswith("valid_")}
    counts = torch.bincount(torch.as_tensor(split.train[:, 1]), minlength=tiny.num_items).float()
    expected = evaluate(lambda users, items: counts[items].expand(len(users), -1), eval_task(split, "test"),
                        tiny.num_items, (5,), config.eval_batch_users)
    assert {k: result.test[k] for k in expected} == pytest.approx(expected)
    assert {"sampled_mrr", "sampled_hr@5", "sampled_ndcg@5"} <= set(result.test)


def test_valid_metrics_are_the_best_epochs(tiny):
    config = TrainConfig.from_dict({"model": "deepfm", **SMALL, "epochs": 4, "patience": 4, "mlp_dims": [8]})
    result = fit(config, tiny, make_split(tiny, "warm", 0))
    best = result.history[result.best_epoch - 1]
    assert result.valid["ndcg@5"] == best["valid_ndcg@5"] == max(row["valid_ndcg@5"] for row in result.history)


def test_a_protocol_the_model_cannot_serve_is_refused(tiny):
    config = TrainConfig.from_dict({"model": "autorec", **SMALL, "split": "item_cold"})
    with pytest.raises(ConfigError, match="model 'autorec' needs interactions for the held-out items of the "
                                          "item_cold protocol"):
        fit(config, tiny, make_split(tiny, "item_cold", 0))
