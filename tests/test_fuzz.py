"""Fuzzed user input (targets in raysearch/testing/fuzzing.py): every case is accepted or rejected with the
project's own error naming the file (and a line that exists); never a traceback, never code run by a YAML tag.

Derandomized with no example database, so CI tries the same cases on every run; ``benchmarks/fuzz.py``
runs the same targets with many more cases and counts them.
"""

from __future__ import annotations

import collections
import io

import pytest
import torch
from hypothesis import HealthCheck, given, settings

from raysearch.config import TrainConfig
from raysearch.data.movielens import load_dataset
from raysearch.errors import ConfigError, DataError
from raysearch.testing import fuzzing

FUZZ = settings(max_examples=60, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("target", fuzzing.TARGETS, ids=lambda t: t.name)
def test_fuzzed_input_is_accepted_or_clearly_rejected(target):
    outcomes = collections.Counter()

    @FUZZ
    @given(target.cases)
    def run(case):
        outcomes[target.check(case)] += 1

    run()
    assert outcomes["rejected"] > 0 and sum(outcomes.values()) >= 60


def test_unmutated_inputs_are_accepted():
    assert fuzzing.check_space(fuzzing.VALID_SPACE) == "accepted"
    assert fuzzing.check_overrides(["learning_rate=1e-3", "topk=[5, 10]", "metric=hit@5"]) == "accepted"
    for layout in fuzzing.LAYOUTS:
        assert fuzzing.check_data((layout, fuzzing.base_files(layout))) == "accepted"
    assert fuzzing.check_model(fuzzing.base_checkpoint()) == "accepted"


def _space(change: dict) -> dict:
    return {**fuzzing.VALID_SPACE, **{k: {**fuzzing.VALID_SPACE[k], **v} for k, v in change.items()}}


@pytest.mark.parametrize("case", [  # each once raised a traceback
    _space({"config": {"rating_threshold": 10**400}}),
    _space({"params": {"learning_rate": {"type": "uniform", "low": 0.1, "high": 10**400}}}),
    _space({"params": {"num_layers": {"type": "randint", "low": 0, "high": 10**400}}}),
    _space({"params": {"embedding_dim": {"type": ["choice"], "values": [8]}}}),
    _space({"config": {"metric": "ndcg@²"}}),
    _space({"experiment": {"name": "a\x00b"}}),
    "params: {learning_rate: {type: uniform, low: !!timestamp 2001-13-99x, high: 0.2}}\n",
    "params: {learning_rate: {type: uniform, low: !!int abc, high: 0.2}}\n",
    "params: {learning_rate: {type: uniform, low: 0.1, high: !!bool maybe}}\n",
    "params: " + "[" * 600 + "\n",
], ids=["huge_float", "huge_bound", "huge_randint", "list_type", "unicode_digit", "nul_name", "timestamp_tag",
        "int_tag", "bool_tag", "deep_nesting"])
def test_space_cases_found_by_fuzzing_are_rejected(case):
    assert fuzzing.check_space(case) == "rejected"


@pytest.mark.parametrize("assignment, fragment", [
    ("seed=1180591620717411303424", "key 'seed': 1180591620717411303424 is out of the 64-bit integer range"),
    ("temperature=.inf", "key 'temperature': expected a finite number, got inf"),
    ("learning_rate=1e38", "'learning_rate' = 1e+38 must be in (0, 1000]"),
    ("epochs=!!int abc", "value '!!int abc' for key 'epochs': not valid YAML"),
    ("metric=ndcg@010", "'metric' = 'ndcg@010' must be one of"),
])
def test_set_values_found_by_fuzzing_are_config_errors(assignment, fragment):
    with pytest.raises(ConfigError) as err:
        TrainConfig().with_overrides([assignment])
    assert str(err.value).startswith("--set: ") and fragment in str(err.value)


def _with(layout: str, name: str, edit) -> tuple[str, dict[str, bytes]]:
    files = fuzzing.base_files(layout)
    return layout, {**files, name: edit(files[name])}


@pytest.mark.parametrize("case, fragment", [
    (_with("ml-100k", "u.data", lambda b: b.replace(b"1\t1\t", b"inf\t1\t", 1)), "u.data, line 1: user id 'inf' is not an integer"),
    (_with("ml-1m", "users.dat", lambda b: b.replace(b"1::M", b"99999999999999999999::M", 1)),
     "users.dat, line 1: user id '99999999999999999999' is not an integer"),
    (_with("ml-1m-csv", "movies.dat", lambda b: b.replace(b"Film 1", b"Film\r1", 1).replace(b"3::", b"x::", 1)),
     "movies.dat, line 3: movie id 'x' is not an integer"),  # a lone \r does not end a line
    (_with("ml-100k", "u.user", lambda b: b + b"3|30|F|writer|12345\n"), "u.user, line 7: user id 3 is already listed on line 3"),
    (_with("ml-1m", "movies.dat", lambda b: b.replace(b"2::Film 2", b"1::Film 2", 1)),
     "movies.dat, line 2: movie id 1 is already listed on line 1"),
])
def test_data_cases_found_by_fuzzing_name_file_and_line(case, fragment, tmp_path):
    layout, files = case
    folder = tmp_path / layout
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with pytest.raises(DataError) as err:
        load_dataset(layout.removesuffix("-csv"), folder)
    assert str(err.value).startswith(str(folder)) and fragment in str(err.value)
    assert fuzzing.check_data(case) == "rejected"


def _edited_checkpoint(**entries) -> bytes:
    checkpoint = torch.load(io.BytesIO(fuzzing.base_checkpoint()), weights_only=True)
    buffer = io.BytesIO()
    torch.save({k: v for k, v in {**checkpoint, **entries}.items() if v is not None}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("data", [
    b"", fuzzing.base_checkpoint()[:100], _edited_checkpoint(config=None), _edited_checkpoint(train=torch.zeros(4, 2)),
    _edited_checkpoint(item_titles=["one"]), _edited_checkpoint(model_args={"num_users": 1}),
], ids=["empty", "truncated", "no_config", "float_edges", "short_titles", "bad_model_args"])
def test_damaged_model_files_are_data_errors(data):
    assert fuzzing.check_model(data) == "rejected"
