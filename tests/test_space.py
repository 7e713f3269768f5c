import dataclasses
from pathlib import Path

import pytest
import yaml

from raysearch.errors import ConfigError
from raysearch.registry import MODELS
from raysearch.search.space import load_space, parse_space

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"


@pytest.mark.parametrize("name", ["default", "cold_start", "smoke", "warm_cold"])
def test_shipped_spaces_validate(name):
    space = load_space(SPACES / f"{name}.yaml")
    assert {"contrastive_weight", "learning_rate", "num_layers", "temperature"} <= {p.key for p in space.params}
    assert space.metric == "valid_ndcg@10"
    assert (SPACES / f"{name}.yaml").read_text().startswith("#") and "raysearch tune --space" in (SPACES / f"{name}.yaml").read_text()


def _write(tmp_path, document) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


BASE = {"config": {"epochs": 5}, "params": {"learning_rate": {"type": "loguniform", "low": 1e-3, "high": 1e-1}}}


@pytest.mark.parametrize("change, fragment", [
    ({"params": {"learning_rte": {"type": "uniform", "low": 0.1, "high": 0.2}}}, "params.learning_rte: unknown parameter 'learning_rte'"),
    ({"params": {"num_layers": {"type": "randint", "low": "one", "high": 3}}}, "params.num_layers.low: expected int, got 'one'"),
    ({"params": {"temperature": {"type": "uniform", "low": 0.5, "high": 0.5}}}, "params.temperature: low must be < high, got low=0.5 high=0.5"),
    ({"params": {"learning_rate": {"type": "loguniform", "low": 0, "high": 0.1}}}, "params.learning_rate: loguniform needs low > 0, got low=0.0"),
    ({"params": {"embedding_dim": {"type": "choice", "values": []}}}, "params.embedding_dim: values must be a non-empty list, got []"),
    ({"params": {"embedding_dim": {"type": "normal", "mu": 1}}}, "params.embedding_dim: expected {type: loguniform|uniform|randint|choice"),
    ({"params": {"temperature": {"type": "uniform", "low": -1.0, "high": 0.5}}}, "params.temperature: key 'temperature' = -1.0 must be > 0"),
    ({"config": {"metric": "auc@10"}}, "config: key 'metric' = 'auc@10' must be one of"),
    ({"config": {"epochs": "ten"}}, "config: key 'epochs': expected int, got 'ten'"),
    ({"resources": {"workers_per_trial": 0}}, "resources: key 'workers_per_trial' = 0 must be >= 1"),
    ({"scheduler": {"grace": 1}}, "scheduler: unknown key 'grace'"),
    ({"experiment": {"name": "../up"}}, "experiment: key 'name' = '../up' must be a plain folder name"),
    ({"extra": {}}, "unknown section 'extra'"),
    ({"params": {}}, "params is empty"),
    ({"scheduler": {"grace_period": 6}}, "scheduler: key 'grace_period' = 6 must be <= config.epochs = 5 (ASHA's max_t)"),
    ({"experiment": {"num_samples": 8, "n_startup_trials": 9}}, "experiment: key 'n_startup_trials' = 9 must be in 1..num_samples (8)"),
    ({"experiment": {"n_startup_trials": 0}}, "experiment: key 'n_startup_trials' = 0 must be in 1..num_samples (16)"),
    ({"experiment": {"max_concurrent_trials": 0}}, "experiment: key 'max_concurrent_trials' = 0 must be >= 1 (or null: automatic)"),
    ({"config": {"epochs": 5, "propagation": "sampled", "sparse_ids": True, "user_neighbours": 0},
      "resources": {"use_gpu": True, "workers_per_trial": 2}},
     "sparse_ids: true with resources.use_gpu and workers_per_trial = 2: NCCL has no sparse all-reduce"),
    ({"config": {"epochs": 5, "propagation": "sampled", "user_neighbours": 0},
      "resources": {"use_gpu": True, "workers_per_trial": 2},
      "params": {"sparse_ids": {"type": "choice", "values": [False, True]}}}, "NCCL has no sparse all-reduce"),
    ({"config": {"epochs": 5, "learning_rate": 0.5}, "experiment": {"evaluate_config": True}},
     "experiment.evaluate_config: config value learning_rate = 0.5 lies outside params.learning_rate"),
])
def test_bad_spaces_name_file_key_and_value(tmp_path, change, fragment):
    path = _write(tmp_path, {**BASE, **change})
    with pytest.raises(ConfigError) as err:
        load_space(path)
    assert str(err.value).startswith(str(path)) and fragment in str(err.value)


@pytest.mark.parametrize("text, fragment", [
    ("- a\n- b\n", "expected a mapping at the top level, got list"),
    ("params: [1, 2\n", "not valid YAML"),
    ("!!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),
])
def test_malformed_documents_never_execute(tmp_path, text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_space(_write(tmp_path, text))


def test_overrides_fix_a_key_and_stop_searching_it(tmp_path):
    space = load_space(SPACES / "default.yaml").with_overrides(["num_layers=1", "epochs=6"])
    assert space.config.settings.num_layers == 1 and space.config.epochs == 6
    assert "num_layers" not in {p.key for p in space.params}
    config = space.trial_config({"learning_rate": 0.01, "contrastive_weight": 0.2, "temperature": 0.1})
    assert config.learning_rate == 0.01 and config.settings.num_layers == 1


def test_document_round_trip():
    space = load_space(SPACES / "cold_start.yaml")
    again = parse_space(yaml.safe_load(yaml.safe_dump(space.to_document(), sort_keys=False)), "copy")
    assert again.params == space.params and again.config == space.config and again.resources == space.resources


@pytest.mark.parametrize("path", sorted((SPACES / "baselines").glob("*.yaml")), ids=lambda p: p.stem)
def test_baseline_spaces_fix_only_what_the_registry_does_not(path):
    """Each baseline space names its model and leaves the model's defaults to the registry."""
    document = yaml.safe_load(path.read_text())
    space = load_space(path)
    spec = MODELS[path.stem]
    assert document["config"]["model"] == spec.name and space.config.model == spec.name
    assert not {k for k, v in spec.defaults.items() if document["config"].get(k) == v}
    assert all(space.config.to_dict()[k] == v for k, v in spec.defaults.items() if k not in {p.key for p in space.params})


def test_params_are_the_chosen_models_keys(tmp_path):
    path = _write(tmp_path, {"config": {"model": "autorec"},
                             "params": {"num_layers": {"type": "randint", "low": 1, "high": 3}}})
    with pytest.raises(ConfigError, match="params.num_layers: unknown parameter 'num_layers' for model 'autorec'; "
                                          "searchable keys: model, dataset"):
        load_space(path)
    path = _write(tmp_path, {"config": {"model": "deepfm"}, "resources": {"workers_per_trial": 2},
                             "params": {"mlp_dims": {"type": "choice", "values": [[8], [16, 8]]}}})
    with pytest.raises(ConfigError, match="workers_per_trial = 2: model 'deepfm' trains on one worker"):
        load_space(path)


def test_resources_given_on_the_command_line_are_checked_too(tmp_path):
    sampled = {"epochs": 5, "propagation": "sampled", "sparse_ids": True, "user_neighbours": 0}
    space = load_space(_write(tmp_path, {**BASE, "config": sampled}))
    with pytest.raises(ConfigError, match="NCCL has no sparse all-reduce; set sparse_ids: false or workers_per_trial: 1"):
        space.with_resources(use_gpu=True, workers_per_trial=2)
    assert space.with_resources(workers_per_trial=2).resources.workers_per_trial == 2  # gloo all-reduces sparse


def test_a_set_epochs_below_the_grace_period_is_refused_naming_the_file(tmp_path):
    path = _write(tmp_path, {**BASE, "scheduler": {"grace_period": 3}})
    with pytest.raises(ConfigError, match=r"space.yaml: scheduler: key 'grace_period' = 3 must be <= config.epochs = 2"):
        load_space(path).with_overrides(["epochs=2"])


@pytest.mark.parametrize("experiment, startup", [({}, 4), ({"num_samples": 2}, 1), ({"num_samples": 100}, 10),
                                                 ({"num_samples": 8, "n_startup_trials": 8}, 8)])
def test_tpe_startup_trials_default_to_a_quarter_of_the_budget(tmp_path, experiment, startup):
    space = load_space(_write(tmp_path, {**BASE, "experiment": experiment}))
    assert space.experiment.startup_trials == startup and space.experiment.max_concurrent_trials is None


MIXED = {"config": {"epochs": 5, "split": "mixed"}, "params": BASE["params"],
         "objectives": [{"metric": "warm_ndcg@10", "mode": "max"}, {"metric": "item_cold_ndcg@10"}]}


@pytest.mark.parametrize("change, fragment", [
    ({"objectives": [{"metric": "warm_ndcg@10"}]}, "objectives: expected a list of 2 or more {metric, mode}"),
    ({"objectives": [{"metric": "warm_ndcg@10"}, {"metric": "cold_ndcg@10"}]},
     "objectives[1].metric: key 'metric' = 'cold_ndcg@10' must be one of recall|ndcg|mrr|hit"),
    ({"objectives": [{"metric": "warm_ndcg@10"}, {"metric": "warm_ndcg@10", "mode": "max"}]},
     "objectives[1].metric: 'warm_ndcg@10' is listed twice"),
    ({"objectives": [{"metric": "warm_ndcg@10", "mode": "up"}, {"metric": "item_cold_ndcg@10"}]},
     "objectives[0].mode: expected max or min, got 'up'"),
    ({"objectives": [{"metric": "warm_ndcg@10", "goal": "max"}, {"metric": "item_cold_ndcg@10"}]},
     "objectives[0]: expected {metric: NAME, mode: max|min}"),
    ({"config": {"epochs": 5, "split": "mixed", "metric": "recall@10"}},
     "config: key 'metric' = 'recall@10' (the scalar of early stopping, checkpoints and ASHA) names no objective; "
     "use one of warm_ndcg@10, item_cold_ndcg@10 or their mean ndcg@10"),
])
def test_bad_objectives_name_file_key_and_value(tmp_path, change, fragment):
    path = _write(tmp_path, {**MIXED, **change})
    with pytest.raises(ConfigError) as err:
        load_space(path)
    assert str(err.value).startswith(str(path)) and fragment in str(err.value)


def test_objectives_parse_and_round_trip(tmp_path):
    space = load_space(_write(tmp_path, {**MIXED, "scheduler": {"asha": False}}))
    assert [(o.metric, o.mode, o.key) for o in space.objectives] == [
        ("warm_ndcg@10", "max", "best_valid_warm_ndcg@10"), ("item_cold_ndcg@10", "max", "best_valid_item_cold_ndcg@10")]
    assert not space.scheduler.asha and space.config.metric == "ndcg@10"  # their mean on the mixed split
    assert parse_space(space.to_document(), "again") == dataclasses.replace(space, source="again")
    assert load_space(_write(tmp_path, BASE)).objectives == ()


def test_evaluate_config_makes_the_config_values_the_first_trial(tmp_path):
    space = load_space(_write(tmp_path, {**BASE, "config": {"epochs": 5, "learning_rate": 0.02},
                                         "experiment": {"evaluate_config": True}}))
    assert space.first_trials() == [{"learning_rate": 0.02}]
    assert load_space(_write(tmp_path, BASE)).first_trials() == []
