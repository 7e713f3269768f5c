import pytest

from raysearch.config import TrainConfig
from raysearch.errors import ConfigError


def test_defaults_are_valid_and_round_trip_through_yaml(tmp_path):
    config = TrainConfig()
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    assert TrainConfig.from_yaml(path) == config


def test_overrides_parse_yaml_scalars_and_coerce_ints_to_floats():
    config = TrainConfig().with_overrides(["learning_rate=1e-3", "num_layers=2", "contrastive_weight=1", "topk=[5, 10]"])
    assert config.learning_rate == 0.001 and config.num_layers == 2
    assert config.contrastive_weight == 1.0 and isinstance(config.contrastive_weight, float)
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
])
def test_bad_values_name_source_key_and_value(values, fragment):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict(values, source="my.yaml")
    assert str(err.value).startswith("my.yaml: ") and fragment in str(err.value)


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
