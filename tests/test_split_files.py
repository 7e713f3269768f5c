"""Splits as JSON files: the format, its validation, and round trips that reproduce a run's metrics."""

import dataclasses
import json

import jsonschema
import numpy as np
import pytest

from raysearch import cli
from raysearch.config import TrainConfig
from raysearch.data.protocols import make_split
from raysearch.data.split_files import SCHEMA, read_split, split_document, split_for, write_split
from raysearch.errors import DataError
from raysearch.search.space import load_space
from raysearch.train.fit import fit

# A small config for ML-100K round trips: seconds per fit.
FAST = dict(seed=7, epochs=2, embedding_dim=16, num_layers=1, batch_size=16384, num_negatives=4,
            contrastive_pairs=128, topk=[10], eval_batch_users=1024)

# Users 1-12 and items 101-110 (the tiny dataset's ids), with these 12 interactions by original id.
HAND_PAIRS = [(1, 101), (1, 102), (1, 103), (2, 101), (2, 104), (3, 102), (3, 103), (3, 105),
              (4, 104), (4, 105), (5, 101), (5, 105)]


@pytest.fixture
def hand(tiny):
    """The tiny dataset with the interactions above: every split size below is counted by hand from this list."""
    pairs = np.array([(u - 1, i - 101) for u, i in HAND_PAIRS], dtype=np.int64)
    return dataclasses.replace(tiny, name="hand", interactions=pairs)


def _file(tmp_path, document, name="split.json"):
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def _ids(dataset, pairs):
    return sorted(zip(dataset.user_ids[pairs[:, 0]].tolist(), dataset.item_ids[pairs[:, 1]].tolist()))


def test_the_shipped_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert set(SCHEMA["properties"]) == {"dataset", "protocol", "seed", "description", "cold_items", "cold_users",
                                         "train", "valid", "test"}


def test_hand_written_item_cold_ids_send_every_interaction_of_a_cold_item_to_its_part(hand, tmp_path):
    path = _file(tmp_path, {"dataset": "hand", "protocol": "item_cold", "cold_items": {"valid": [101], "test": [105]}})
    split = read_split(path, hand)
    # item 101: users 1, 2, 5; item 105: users 3, 4, 5; the other 12 - 3 - 3 = 6 interactions train
    assert (len(split.train), len(split.valid), len(split.test)) == (6, 3, 3)
    assert _ids(hand, split.valid) == [(1, 101), (2, 101), (5, 101)]
    assert _ids(hand, split.test) == [(3, 105), (4, 105), (5, 105)]
    assert hand.item_ids[split.cold_items["test"]].tolist() == [105] and split.seed is None
    assert not split.cold_users["valid"].size


def test_hand_written_user_cold_ids(hand, tmp_path):
    path = _file(tmp_path, {"protocol": "user_cold", "seed": 3, "cold_users": {"valid": [2], "test": [5, 4]}})
    split = read_split(path, hand)
    # user 2 rated 2 items, users 4 and 5 two each: valid 2, test 4, train 12 - 6 = 6
    assert (len(split.train), len(split.valid), len(split.test)) == (6, 2, 4)
    assert hand.user_ids[split.cold_users["test"]].tolist() == [4, 5] and split.seed == 3


def test_hand_written_explicit_warm_split_is_used_as_listed(hand, tmp_path):
    document = {"protocol": "warm", "train": [[3, 103], [1, 101], [1, 102], [2, 101], [3, 102], [4, 104], [5, 101]],
                "valid": [[1, 103], [3, 105]], "test": [[2, 104], [4, 105]]}
    split = read_split(_file(tmp_path, document), hand)
    assert (len(split.train), len(split.valid), len(split.test)) == (7, 2, 2)  # (5, 105) is in no part
    assert np.stack([hand.user_ids[split.train[:, 0]], hand.item_ids[split.train[:, 1]]], 1).tolist() == document["train"]


def test_hand_written_explicit_item_cold_split_keeps_candidates_without_positives(hand, tmp_path):
    document = {"protocol": "item_cold", "cold_items": {"valid": [103], "test": [104, 110]},
                "train": [[1, 101], [1, 102], [2, 101], [3, 102], [3, 105], [4, 105], [5, 101], [5, 105]],
                "valid": [[1, 103], [3, 103]], "test": [[2, 104]]}
    split = read_split(_file(tmp_path, document), hand)
    assert (len(split.train), len(split.valid), len(split.test)) == (8, 2, 1)
    assert hand.item_ids[split.cold_items["test"]].tolist() == [104, 110]  # 110 is ranked though nobody rated it
    derived = read_split(_file(tmp_path, {k: v for k, v in document.items() if k != "cold_items"}, "b.json"), hand)
    assert hand.item_ids[derived.cold_items["test"]].tolist() == [104]  # without the ids: the part's own items


@pytest.mark.parametrize("document, fragment", [
    ({"protocol": "item_cold", "cold_items": {"valid": [101, 999, 998], "test": [105]}},
     "key 'cold_items.valid': unknown item ids 998, 999: not items of hand (only items with a rating >= "
     "rating_threshold are indexed)"),
    ({"protocol": "warm", "train": [[1, 101], [77, 102]], "valid": [[1, 103]], "test": [[2, 104]]},
     "key 'train': unknown user ids 77: not users of hand"),
    ({"protocol": "item_cold", "cold_items": {"valid": [101], "test": [105]},
      "train": [[1, 101], [1, 102]], "valid": [[2, 101]], "test": [[3, 105]]},
     "key 'cold_items.valid': item ids both cold and warm (in cold_items.valid and in train): 101"),
    ({"protocol": "user_cold", "train": [[1, 101], [2, 101]], "valid": [[2, 104]], "test": [[4, 105]]},
     "key 'valid': user ids both cold and warm (in valid and in train): 2"),
    ({"protocol": "item_cold", "cold_items": {"valid": [101, 102], "test": [102]}},
     "key 'cold_items.valid': item ids in both cold_items.valid and cold_items.test: 102"),
    ({"protocol": "user_cold", "train": [[1, 101]], "valid": [[2, 101], [4, 104]], "test": [[4, 105]]},
     "key 'valid': user ids in both valid and test: 4"),
    ({"protocol": "warm", "train": [[1, 101]], "valid": [[1, 103], [3, 105]], "test": [[3, 105]]},
     "key 'valid': pairs in both valid and test: [3, 105]"),
    ({"protocol": "item_cold", "cold_items": {"valid": [103], "test": [105]},
      "train": [[1, 101]], "valid": [[1, 103], [1, 102]], "test": [[3, 105]]},
     "key 'valid': item ids 102 are not in cold_items.valid"),
    ({"dataset": "ml-1m", "protocol": "item_cold", "cold_items": {"valid": [101], "test": [105]}},
     "key 'dataset': the split is for 'ml-1m', not for 'hand'"),
    ({"protocol": "item_cold", "cold_items": {"valid": [], "test": [105]}}, "key 'cold_items.valid': [] should be non-empty"),
    ({"protocol": "user_cold", "cold_users": {"valid": [1, 2, 3], "test": [4, 5]}},
     "key 'train': the train part of this user_cold split is empty"),
    ({"protocol": "warm", "cold_items": {"valid": [101], "test": [105]}},
     "key 'cold_items': protocol warm takes no cold_items (a warm split has no cold ids)"),
    ({"protocol": "warm"}, "key 'protocol': protocol warm needs the train/valid/test lists (a warm split cannot be "
     "given as cold ids)"),
    ({"protocol": "item_cold", "cold_users": {"valid": [1], "test": [2]}},
     "key 'cold_users': protocol item_cold takes no cold_users (its cold ids are cold_items)"),
    ({"protocol": "warm", "train": [[1, 101], [1, 110]], "valid": [[1, 103]], "test": [[2, 104]]},
     "key 'train': pairs that are not interactions of hand (with this rating_threshold): [1, 110]"),
    ({"protocol": "warm", "train": [[1, 101], [1, 101]], "valid": [[1, 103]], "test": [[2, 104]]},
     "key 'train': pairs listed more than once: [1, 101]"),
    ({"protocol": "item_cold", "cold_items": {"valid": [101, 101], "test": [105]}},
     "key 'cold_items.valid': ids listed more than once: 101"),
    ({"protocol": "warm", "train": [[1, 101], [1, 102], [2, "104"]], "valid": [[1, 103]], "test": [[2, 104]]},
     "key 'train[2][1]': '104' is not of type 'integer'"),
    ({"protocol": "warm", "train": [[1, 101]], "valid": [[1, 103]]}, "key '(top level)': 'test' is a dependency of 'train'"),
    ({"protocol": "item_cold", "cold_item": {"valid": [101], "test": [105]}},
     "Additional properties are not allowed ('cold_item' was unexpected)"),
    ({"cold_items": {"valid": [101], "test": [105]}}, "key '(top level)': 'protocol' is a required property"),
    ({"protocol": "mixed", "cold_items": {"valid": [101], "test": [105]}},
     "key 'protocol': protocol mixed needs the train/valid/test lists and cold_items"),
    ({"protocol": "mixed", "cold_items": {"valid": [103], "test": [105]},
      "train": [[1, 101], [1, 103]], "valid": [[2, 104]], "test": [[3, 105]]},
     "key 'cold_items.valid': item ids both cold and warm (in cold_items.valid and in train): 103"),
    ({"protocol": "mixed", "cold_items": {"valid": [103], "test": [105]},
      "train": [[1, 101]], "valid": [[3, 105]], "test": [[1, 103]]},
     "key 'valid': item ids of the other part's cold_items in valid: 105"),
    ({"protocol": "mixed", "cold_items": {"valid": [103], "test": [105]}, "cold_users": {"valid": [1], "test": [4]},
      "train": [[2, 101]], "valid": [[1, 103]], "test": [[3, 105]]},
     "key 'valid': pairs of a cold user with a cold item (no sub-protocol ranks them): [1, 103]"),
    ({"protocol": "item_cold", "cold_items": {"valid": [2**70], "test": [105]}},
     "key 'cold_items.valid': an id does not fit in 64 bits"),
])
def test_invalid_split_files_are_refused_naming_file_key_and_values(hand, tmp_path, document, fragment):
    path = _file(tmp_path, document)
    with pytest.raises(DataError) as error:
        read_split(path, hand)
    assert str(error.value).startswith(f"{path}: ") and fragment in str(error.value)


def test_unreadable_files_are_refused(hand, tmp_path):
    with pytest.raises(DataError, match="split file not found"):
        read_split(tmp_path / "missing.json", hand)
    (tmp_path / "bad.json").write_text('{"protocol": "warm",\n "train": [[1, 2]')
    with pytest.raises(DataError, match=r"bad.json: not valid JSON: line 2 column 18: Expecting .,. delimiter"):
        read_split(tmp_path / "bad.json", hand)


def test_errors_show_a_few_ids_not_thousands(ml100k, tmp_path):
    path = _file(tmp_path, {"protocol": "item_cold", "cold_items": {"valid": list(range(5000, 9000)), "test": [1]}})
    with pytest.raises(DataError, match=r"unknown item ids 5000, 5001, 5002, 5003, 5004 and 3995 more: not items of ml-100k"):
        read_split(path, ml100k)


def test_split_for_draws_or_reads_and_checks_the_protocol(hand, tmp_path):
    config = TrainConfig(split="item_cold", seed=4)
    drawn = split_for(config, hand)
    assert np.array_equal(drawn.valid, make_split(hand, "item_cold", 4).valid)
    path = _file(tmp_path, {"protocol": "user_cold", "cold_users": {"valid": [2], "test": [4]}})
    assert split_for(dataclasses.replace(config, split="user_cold", split_file=str(path)), hand).protocol == "user_cold"
    with pytest.raises(DataError, match="key 'protocol': the file holds a user_cold split but the config's split is "
                                        "'item_cold'; set split=user_cold"):
        split_for(dataclasses.replace(config, split_file=str(path)), hand)


@pytest.mark.parametrize("protocol, share", [("warm", 0.0), ("item_cold", 0.0), ("user_cold", 0.0), ("mixed", 0.1)])
def test_written_split_reproduces_the_run_exactly(ml100k, tmp_path, protocol, share):
    split = make_split(ml100k, protocol, 7, share)
    write_split(split, ml100k, tmp_path / "split.json")
    document = json.loads((tmp_path / "split.json").read_text())
    assert document["dataset"] == "ml-100k" and document["protocol"] == protocol and document["seed"] == 7
    assert ("train" in document) == (protocol in ("warm", "mixed"))  # the cold protocols write their cold ids only
    if protocol in ("item_cold", "mixed"):
        assert document["cold_items"]["test"] == ml100k.item_ids[split.cold_items["test"]].tolist()
    assert ("cold_users" in document) == (protocol in ("user_cold", "mixed"))
    config = TrainConfig.from_dict({"split": protocol, "cold_user_share": share, **FAST})
    read = split_for(dataclasses.replace(config, split_file=str(tmp_path / "split.json")), ml100k)
    for part in ("train", "valid", "test"):
        assert np.array_equal(read.part(part), split.part(part))  # same pairs, same order
    first, second = fit(config, ml100k, split), fit(config, ml100k, read)
    assert (first.best_epoch, first.valid, first.test) == (second.best_epoch, second.valid, second.test)
    assert [r["loss"] for r in first.history] == [r["loss"] for r in second.history]


@pytest.mark.parametrize("protocol", ["item_cold", "user_cold"])
def test_explicit_form_of_a_cold_split_reads_back_identically(ml100k, tmp_path, protocol):
    split = make_split(ml100k, protocol, 5)
    write_split(split, ml100k, tmp_path / "split.json", explicit=True)
    document = json.loads((tmp_path / "split.json").read_text())
    assert len(document["train"]) == len(split.train) and document["train"][0] == [
        int(ml100k.user_ids[split.train[0, 0]]), int(ml100k.item_ids[split.train[0, 1]])]
    read = read_split(tmp_path / "split.json", ml100k)
    for part in ("train", "valid", "test"):
        assert np.array_equal(read.part(part), split.part(part))
    for part in ("valid", "test"):
        assert np.array_equal(read.cold_items[part], split.cold_items[part])
        assert np.array_equal(read.cold_users[part], split.cold_users[part])


def test_a_split_the_cold_ids_cannot_express_is_written_explicitly(hand, tmp_path):
    document = {"protocol": "item_cold", "cold_items": {"valid": [103], "test": [104]},
                "train": [[1, 101], [1, 102]], "valid": [[1, 103]], "test": [[2, 104]]}
    split = read_split(_file(tmp_path, document), hand)
    written = split_document(split, hand)
    assert {k: written[k] for k in document} == document and written["dataset"] == "hand" and "seed" not in written


def test_relative_split_file_resolves_next_to_the_yaml_or_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "space.yaml").write_text(
        "config: {split: item_cold, split_file: splits/cold.json}\nparams: {learning_rate: {type: choice, values: [0.01]}}\n")
    assert load_space(tmp_path / "spaces" / "space.yaml").config.split_file == str(tmp_path / "spaces" / "splits" / "cold.json")
    (tmp_path / "run.yaml").write_text("split_file: ../cold.json\n")
    assert TrainConfig.from_yaml(tmp_path / "run.yaml").split_file == str(tmp_path.parent / "cold.json")
    monkeypatch.chdir(tmp_path)
    assert TrainConfig().with_overrides(["split_file=x.json"]).split_file == str(tmp_path / "x.json")
    assert TrainConfig.from_dict({"split_file": None}).split_file is None


def test_split_command_draws_a_split_file(data_root, tmp_path, capsys):
    out = tmp_path / "cold.json"
    assert cli.main(["split", "--dataset", "ml-100k", "--protocol", "item_cold", "--seed", "7", "--out", str(out),
                     "--data-dir", str(data_root)]) == 0
    assert "item_cold split, seed 7: train" in capsys.readouterr().out
    document = json.loads(out.read_text())
    assert set(document) == {"dataset", "protocol", "seed", "cold_items"} and len(document["cold_items"]["valid"]) == 168
    assert cli.main(["split", "--protocol", "item_cold", "--out", str(out), "--data-dir", str(data_root)]) == 2
    assert "file exists" in capsys.readouterr().err
    assert cli.main(["split", "--protocol", "user_cold", "--explicit", "--out", str(tmp_path / "explicit.json"),
                     "--data-dir", str(data_root)]) == 0
    assert {"cold_users", "train", "valid", "test"} <= set(json.loads((tmp_path / "explicit.json").read_text()))


def test_train_cli_round_trip_through_split_json(data_root, tmp_path, capsys):
    fast = [f"--set={k}={v}" for k, v in FAST.items()]
    common = ["--data-dir", str(data_root), "--threads", "1", *fast]
    assert cli.main(["train", "--split", "user_cold", "--out", str(tmp_path / "a"), *common]) == 0
    # protocol and dataset come from the file
    assert cli.main(["train", "--split-file", str(tmp_path / "a" / "split.json"), "--out", str(tmp_path / "b"), *common]) == 0
    first, second = (json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("a", "b"))
    assert first == second
    config = TrainConfig.from_yaml(tmp_path / "b" / "config.yaml")
    assert config.split == "user_cold" and config.split_file == str(tmp_path / "a" / "split.json")
    assert (tmp_path / "b" / "split.json").read_text() == (tmp_path / "a" / "split.json").read_text()
    capsys.readouterr()
    assert cli.main(["train", "--split", "warm", "--split-file", str(tmp_path / "a" / "split.json"),
                     "--out", str(tmp_path / "c"), *common]) == 2
    assert "holds a user_cold split but the config's split is 'warm'" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
