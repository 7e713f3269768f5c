"""The runs `raysearch compare` plans, their keys, and the per-model `--set` items."""

import pytest

from raysearch.compare.plan import (ABLATIONS, LEARNING_RATES, Job, config_label, model_configs, model_overrides, plan,
                                    run_id, split_seeds)
from raysearch.config import TrainConfig
from raysearch.errors import ConfigError
from raysearch.registry import MODELS


def test_set_reaches_the_models_that_have_the_key_and_model_scoped_items_one_model():
    """``MODEL.KEY=VALUE`` reaches that model only and wins over a plain ``KEY=VALUE``; a plain key goes to the
    models that have it and do not pin it."""
    overrides = ["epochs=20", "autorec.epochs=100", "num_layers=2"]
    assert model_overrides("autorec", overrides) == ["epochs=20", "epochs=100"]  # autorec has no num_layers
    assert model_overrides("fusion_gcn", overrides) == ["epochs=20", "num_layers=2"]
    assert model_overrides("mf", overrides) == ["epochs=20"]  # mf pins num_layers=0
    assert model_overrides("lightgbm", ["num_trees=9", "deepfm.mlp_dims=[4]"]) == ["num_trees=9"]


@pytest.mark.parametrize("item, fragment", [
    ("autorek.epochs=5", "unknown model 'autorek' before the dot"),
    ("mf.num_layers=2", "mf fixes num_layers=0 (that is what makes it mf)"),
    ("deepfm.num_layers=2", "unknown key 'num_layers' (value 'deepfm.num_layers=2') for model deepfm; keys: model,"),
    ("epochz=5", "unknown key 'epochz' (value 'epochz=5') for models fusion_gcn, mf, lightgcn"),
    ("epochs", "expected key=value or model.key=value, got 'epochs'"),
])
def test_set_items_no_model_can_take_are_errors(item, fragment):
    with pytest.raises(ConfigError, match="^--set: ") as err:
        model_overrides("fusion_gcn", [item])
    assert fragment in str(err.value)


def test_model_configs_use_the_registry_defaults_or_a_tuned_config(tmp_path):
    configs = model_configs("ml-1m", ["deepfm", "mf"])
    assert configs["deepfm"] == TrainConfig.from_dict({"model": "deepfm", "dataset": "ml-1m"})
    assert (configs["deepfm"].embedding_dim, configs["mf"].settings.rec_loss) == (16, "bpr")
    (tmp_path / "best_config.yaml").write_text(TrainConfig.from_dict({"model": "mf", "learning_rate": 0.02}).to_yaml())
    tuned = model_configs("ml-1m", ["mf"], [tmp_path])["mf"]
    assert (tuned.learning_rate, tuned.dataset) == (0.02, "ml-1m")
    with pytest.raises(ConfigError, match="--models: unknown model 'knn'"):
        model_configs("ml-100k", ["knn"])


def test_plan_holds_models_ablations_and_learning_rates_seed_by_seed():
    configs = model_configs("ml-100k", MODELS)
    jobs = plan(configs, ["warm", "item_cold"], {"warm": 2, "item_cold": 2})
    per_seed = 2 * len(MODELS) + 2 * len(ABLATIONS) + len(LEARNING_RATES)
    assert len(jobs) == 2 * per_seed and [job.config.seed for job in jobs] == [1] * per_seed + [2] * per_seed
    no_graph = next(j for j in jobs if j.variant == "no_graph")
    assert no_graph.config.settings.num_layers == 0 and no_graph.config.model == "fusion_gcn"
    assert len({job.key for job in jobs}) == len(jobs)


def test_keys_label_what_differs_and_match_whatever_the_order_of_their_pairs():
    job = Job("models", "mf", TrainConfig.from_dict({"model": "mf", "seed": 1, "split": "item_cold"}))
    assert config_label(job.config) == "model=mf split=item_cold num_negatives=4 seed=1 rec_loss=bpr"
    written_before = "models|mf|model=mf split=item_cold rec_loss=bpr num_negatives=4 seed=1"  # reports/ml-100k
    assert run_id(job.key) == run_id(written_before) != run_id(written_before.replace("seed=1", "seed=2"))
    assert run_id("models|x|model=x topk=[5, 10] seed=1") == run_id("models|x|model=x seed=1 topk=[5, 10]")


def test_seeds_per_split_run_some_splits_on_more_seeds():
    assert split_seeds("3", ["warm", "item_cold"]) == {"warm": 3, "item_cold": 3}
    assert split_seeds("3, item_cold=5", ["warm", "item_cold"]) == {"warm": 3, "item_cold": 5}
    configs = model_configs("ml-100k", ["popularity"])
    jobs = plan(configs, ["warm", "user_cold"], {"warm": 1, "user_cold": 3}, ablations=False, lr_split=None)
    assert [(j.config.split, j.config.seed) for j in jobs] == [("warm", 1), ("user_cold", 1), ("user_cold", 2),
                                                                 ("user_cold", 3)]
    for text, fragment in (("0", "a count >= 1"), ("3,user_cold=5", "not SPLIT=COUNT for a split in --splits"),
                           ("3,item_cold=x", "a count >= 1"), ("3,5", "not SPLIT=COUNT")):
        with pytest.raises(ConfigError, match=fragment):
            split_seeds(text, ["warm", "item_cold"])
