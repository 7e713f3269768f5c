"""Exported models: a self-contained folder, loaded without Ray or the data files, recommending."""

import json

import pytest
import torch

from raysearch import load_model
from raysearch.config import TrainConfig
from raysearch.data.protocols import make_split
from raysearch.errors import DataError
from raysearch.export import MODEL_FILE, export_model, parse_attributes
from raysearch.train.checkpoint import CHECKPOINT_FILE, save_checkpoint
from raysearch.train.fit import fit


@pytest.fixture
def exported(tiny, tmp_path):
    config = TrainConfig.from_dict({"embedding_dim": 8, "num_layers": 1, "batch_size": 16, "epochs": 3,
                                    "topk": [3], "metric": "ndcg@3", "contrastive_pairs": 16})
    split = make_split(tiny, "warm", 0)
    result = fit(config, tiny, split)
    save_checkpoint(result.checkpoint, tmp_path / "experiment" / "best_checkpoint" / CHECKPOINT_FILE)
    return export_model(tmp_path / "experiment", tmp_path / "model"), result, split, config


def test_the_folder_holds_the_model_without_optimizer_its_config_and_metrics(exported, tmp_path):
    out, result, _, config = exported
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.yaml", "metrics.json", MODEL_FILE]
    assert torch.load(tmp_path / "model" / MODEL_FILE, weights_only=True)["optimizer"] is None
    assert TrainConfig.from_yaml(tmp_path / "model" / "config.yaml") == config
    assert json.loads((tmp_path / "model" / "metrics.json").read_text())["epoch"] == result.best_epoch
    with pytest.raises(DataError, match="output folder already holds files"):
        export_model(tmp_path / "experiment", tmp_path / "model")


def test_known_users_never_get_their_training_items(exported, tiny, tmp_path):
    _, _, split, _ = exported
    recommender = load_model(tmp_path / "model")
    seen = set(tiny.item_ids[split.train[split.train[:, 0] == 0, 1]].tolist())
    top = recommender.recommend(1, tiny.num_items - len(seen))
    assert len(top) == tiny.num_items - len(seen) and not seen & {r.item_id for r in top}
    assert [r.score for r in top] == sorted((r.score for r in top), reverse=True)
    assert len(recommender.recommend_for_attributes({}, 3)) == 3  # a user with every attribute unknown


def test_user_attributes_are_parsed_or_refused():
    assert parse_attributes("gender=F, age=25") == {"gender": "F", "age": "25"}
    with pytest.raises(DataError, match="--user-attrs: expected key=value pairs separated by commas, got 'F'"):
        parse_attributes("F")


def test_a_trial_is_exported_only_from_a_trials_csv_that_names_its_checkpoint(tmp_path):
    with pytest.raises(DataError, match="no trials.csv"):
        export_model(tmp_path, tmp_path / "out", trial="a")
    (tmp_path / "trials.csv").write_text("trial_id,stopped_by\na,patience\n")
    with pytest.raises(DataError, match="trials.csv: no checkpoint column"):
        export_model(tmp_path, tmp_path / "out", trial="a")
    (tmp_path / "trials.csv").write_text("trial_id,stopped_by,checkpoint\na,asha,\n")
    with pytest.raises(DataError, match="trial 'a' kept no checkpoint \\(asha\\)"):
        export_model(tmp_path, tmp_path / "out", trial="a")
    assert not (tmp_path / "out").exists()


def test_a_new_user_gets_the_vector_a_cold_user_gets_in_training_attribute_neighbours_included(tiny, tmp_path):
    config = TrainConfig.from_dict({"embedding_dim": 8, "num_layers": 1, "batch_size": 16, "epochs": 2, "topk": [3],
                                    "metric": "ndcg@3", "contrastive_pairs": 16, "split": "user_cold",
                                    "user_neighbours": 3})
    split = make_split(tiny, "user_cold", 0)
    save_checkpoint(fit(config, tiny, split).checkpoint, tmp_path / "experiment" / "best_checkpoint" / CHECKPOINT_FILE)
    recommender = load_model(export_model(tmp_path / "experiment", tmp_path / "model"))
    assert recommender.inputs.neighbours is not None
    for user in split.cold_users["test"]:
        tokens = [field.bag(user) for field in tiny.user_fields]
        torch.testing.assert_close(recommender.new_user_vector(tokens), recommender.reps.nodes[user])
