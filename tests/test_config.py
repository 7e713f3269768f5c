import pytest

from raysearch.config import COMMON_KEYS, TrainConfig, key_types
from raysearch.errors import ConfigError
from raysearch.registry import MODELS, DeepFMSettings, GCNSettings, LightGBMSettings, NoSettings


def test_defaults_are_valid_and_round_trip_through_yaml(tmp_path):
    config = TrainConfig()
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    assert TrainConfig.from_yaml(path) == config


@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_round_trips_its_flat_keys(model):
    config = TrainConfig.from_dict({"model": model})
    values = config.to_dict()
    assert list(values) == list(key_types(model))  # the common keys, then the model's own
    assert TrainConfig.from_dict(values) == config


def test_keys_are_routed_to_the_common_fields_or_the_models_settings():
    config = TrainConfig.from_dict({"model": "deepfm", "epochs": 3, "mlp_dims": [8], "id_dropout": 0.1})
    assert config.epochs == 3 and config.settings == DeepFMSettings(mlp_dims=(8,), id_dropout=0.1)
    assert TrainConfig.from_dict({"num_layers": 2}).settings.num_layers == 2
    assert isinstance(TrainConfig.from_dict({"model": "popularity"}).settings, NoSettings)
    assert "num_trees" in key_types("lightgbm") and "num_trees" not in COMMON_KEYS


def test_registry_defaults_apply_to_the_keys_not_given():
    """lightgbm: learning_rate 0.1 and num_trees 200 (registry) over the common 0.005 and the settings' 500."""
    config = TrainConfig.from_dict({"model": "lightgbm", "num_leaves": 8})
    assert (config.learning_rate, config.num_negatives, config.settings) == (0.1, 4, LightGBMSettings(8, 200))
    assert TrainConfig.from_dict({"model": "lightgbm", "learning_rate": 0.2}).learning_rate == 0.2
    assert TrainConfig(model="lightgbm").learning_rate == 0.005  # built directly: the values as given


def test_unknown_key_names_the_key_the_model_and_its_keys():
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({"model": "autorec", "num_layers": 2}, source="run.yaml")
    assert str(err.value).startswith("run.yaml: unknown key 'num_layers' (value 2) for model 'autorec'; its keys: "
                                     "model, dataset, split")
    assert "num_trees" not in str(err.value)


def test_pins_fix_keys_and_refuse_contradictions():
    mf = TrainConfig.from_dict({"model": "mf", "fusion": "none", "num_layers": 3})  # the pin or the default: fine
    assert mf.settings == GCNSettings(num_layers=0, fusion="none", rec_loss="bpr", contrastive_weight=0.0,
                                      id_dropout=0.0, cold_weight=0.0, user_neighbours=0)
    assert TrainConfig(model="mf").settings.num_layers == 0
    with pytest.raises(ConfigError, match="key 'num_layers' = 2 contradicts model 'mf', which fixes num_layers=0"):
        TrainConfig.from_dict({"model": "mf", "num_layers": 2})
    with pytest.raises(ConfigError, match="model 'deepfm' takes DeepFMSettings, not GCNSettings"):
        TrainConfig(model="deepfm", settings=GCNSettings())


def test_changing_the_model_drops_the_old_models_own_keys_and_defaults():
    """Keys set away from fusion_gcn's defaults carry over (epochs); its own settings and the keys still at
    its defaults (learning_rate, embedding_dim) take autorec's defaults."""
    config = TrainConfig.from_dict({"num_layers": 1, "epochs": 7}).with_overrides(["model=autorec"])
    assert (config.model, config.epochs, config.learning_rate, config.embedding_dim) == ("autorec", 7, 0.001, 256)
    assert config == TrainConfig.from_dict({"model": "autorec", "epochs": 7})
    back = config.with_overrides(["model=fusion_gcn"])
    assert back == TrainConfig(epochs=7)  # autorec's learning_rate was its default, so fusion_gcn's applies


def test_overrides_parse_yaml_scalars_and_coerce_ints_to_floats():
    config = TrainConfig().with_overrides(["learning_rate=1e-3", "num_layers=2", "contrastive_weight=1", "topk=[5, 10]"])
    assert config.learning_rate == 0.001 and config.settings.num_layers == 2
    assert config.settings.contrastive_weight == 1.0 and isinstance(config.settings.contrastive_weight, float)
    assert config.topk == (5, 10)


@pytest.mark.parametrize("values, fragment", [
    ({"learning_rat": 0.1}, "unknown key 'learning_rat'"),
    ({"num_layers": "three"}, "key 'num_layers': expected int, got 'three'"),
    ({"num_layers": 2.5}, "key 'num_layers': expected int"),
    ({"epochs": True}, "key 'epochs': expected int"),
    ({"learning_rate": 0}, "'learning_rate' = 0.0 must be in (0, 1000]"),
    ({"temperature": -1}, "'temperature' = -1.0 must be > 0"),
    ({"split": "cold"}, "'split' = 'cold' must be one of warm, item_cold, user_cold"),
    ({"metric": "ndcg@50"}, "'metric' = 'ndcg@50'"),
    ({"id_dropout": 1.0}, "'id_dropout' = 1.0 must be in [0, 1)"),
    ({"topk": 10}, "key 'topk': expected a list of int"),
    ({"model": "knn"}, "key 'model' = 'knn' must be one of fusion_gcn, mf"),
    ({"model": ["mf"]}, "key 'model': expected str"),
    ({"fusion": "none"}, "'contrastive_weight' = 0.1 needs attributes to contrast with"),
    ({"model": "deepfm", "mlp_dims": []}, "'mlp_dims' = () must be a non-empty list of widths >= 1"),
    ({"model": "lightgbm", "num_leaves": 1}, "'num_leaves' = 1 must be >= 2"),
    ({"user_neighbours": -1}, "'user_neighbours' = -1 must be >= 0"),
    ({"item_neighbours": 5, "user_neighbours": 0, "propagation": "sampled"}, "'item_neighbours' = 5 needs propagation=full"),
    ({"propagation": "sampled"}, "'user_neighbours' = 10 needs propagation=full (neighbours read the whole graph's "
                                 "views): use user_neighbours=0 with sampled"),
    ({"user_neighbours": 5, "fusion": "none", "contrastive_weight": 0, "cold_weight": 0},
     "'user_neighbours' = 5 needs attributes to find neighbours by"),
])
def test_bad_values_name_source_key_and_value(values, fragment):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict(values, source="my.yaml")
    assert str(err.value).startswith("my.yaml: ") and fragment in str(err.value)


def test_what_each_model_can_score():
    assert TrainConfig.from_dict({"model": "popularity", "split": "user_cold"}).can_score()
    assert not TrainConfig.from_dict({"model": "popularity", "split": "item_cold"}).can_score()
    assert not TrainConfig.from_dict({"model": "mf", "split": "user_cold"}).can_score()  # through its pinned fusion
    ids_only = TrainConfig.from_dict({"split": "item_cold", "fusion": "none", "contrastive_weight": 0, "cold_weight": 0,
                                      "user_neighbours": 0})
    assert not ids_only.can_score() and ids_only.cold_sides() == {"items"}
    assert TrainConfig.from_dict({"model": "deepfm", "split": "item_cold"}).can_score()
    mixed = TrainConfig.from_dict({"split": "mixed", "cold_user_share": 0.1})
    assert mixed.can_score() and mixed.cold_sides() == {"items", "users"}
    assert TrainConfig.from_dict({"split": "mixed"}).cold_sides() == {"items"}
    with pytest.raises(ConfigError, match="model 'lightgbm' does not serve the mixed protocol .*: fusion_gcn, mf, "
                                          "lightgcn, deepfm"):
        TrainConfig.from_dict({"model": "lightgbm", "split": "mixed"}).require_scorable()
    with pytest.raises(ConfigError, match="model 'mf' needs interactions for the held-out items and users of the "
                                          "mixed protocol"):
        TrainConfig.from_dict({"model": "mf", "split": "mixed", "cold_user_share": 0.1}).require_scorable()


@pytest.mark.parametrize("values, fragment", [
    ({"split": "warm", "cold_user_share": 0.1}, "'cold_user_share' = 0.1 must be in [0, 1), and 0 unless split=mixed"),
    ({"split": "mixed", "cold_user_share": 1.0}, "'cold_user_share' = 1.0 must be in [0, 1)"),
    ({"split": "mixed", "metric": "cold_ndcg@10"}, "optionally prefixed by a mixed part (warm_, item_cold_, user_cold_"),
    ({"split": "warm", "metric": "warm_ndcg@10"}, "'metric' = 'warm_ndcg@10' must be one of recall|ndcg|mrr|hit @ a K"),
])
def test_mixed_keys_are_checked(values, fragment):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict(values)
    assert fragment in str(err.value)


def test_a_mixed_metric_may_name_a_part():
    assert TrainConfig.from_dict({"split": "mixed", "metric": "item_cold_recall@20"}).metric == "item_cold_recall@20"


def test_bad_override_syntax_and_bad_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="--set: expected key=value, got 'num_layers'"):
        TrainConfig().with_overrides(["num_layers"])
    path = tmp_path / "bad.yaml"
    path.write_text("learning_rate: [1,\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        TrainConfig.from_yaml(path)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: expected a mapping"):
        TrainConfig.from_yaml(path)
