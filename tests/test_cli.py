"""User errors of the CLI: one clear `raysearch: error:` line (or argparse's usage error) and exit code 2,
no traceback, no Ray needed."""

import json
from pathlib import Path

import pytest

from raysearch import cli
from raysearch.config import TrainConfig
from raysearch.data.protocols import make_split
from raysearch.train.checkpoint import save_checkpoint
from raysearch.train.fit import fit

SMOKE = Path(__file__).resolve().parents[1] / "search_spaces" / "smoke.yaml"


def test_export_and_recommend_errors(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "m")]) == 2
    assert "no best_checkpoint/checkpoint.pt" in capsys.readouterr().err
    (tmp_path / "model").mkdir()
    assert cli.main(["recommend", str(tmp_path / "model"), "--user", "1"]) == 2
    assert "no model.pt; expected a folder written by `raysearch export`" in capsys.readouterr().err


def test_tune_argument_errors(tmp_path, capsys):
    assert cli.main(["tune"]) == 2
    assert "give --space FILE" in capsys.readouterr().err
    assert cli.main(["tune", "--resume", str(tmp_path / "missing")]) == 2
    assert "not a raysearch experiment folder (no search_space.yaml)" in capsys.readouterr().err
    bad = tmp_path / "space.yaml"
    bad.write_text("params: {learning_rate: {type: loguniform, low: 0.1, high: 0.01}}\n")
    assert cli.main(["tune", "--space", str(bad)]) == 2
    assert "params.learning_rate: low must be < high, got low=0.1 high=0.01" in capsys.readouterr().err


@pytest.fixture(scope="module")
def exported(ml100k, tmp_path_factory):
    """A one-epoch ML-100K model in an experiment folder's best_checkpoint/, exported by the CLI (no Ray)."""
    config = TrainConfig.from_dict({"epochs": 1, "embedding_dim": 8, "num_layers": 1, "batch_size": 8192,
                                    "num_negatives": 4, "contrastive_pairs": 64, "topk": [10]})
    result = fit(config, ml100k, make_split(ml100k, "warm", 0))
    experiment = tmp_path_factory.mktemp("experiment")
    save_checkpoint(result.checkpoint, experiment / "best_checkpoint" / "checkpoint.pt")
    model = experiment.parent / f"{experiment.name}-model"
    assert cli.main(["export", str(experiment), "--out", str(model)]) == 0
    return experiment, model


def _fails(argv: list[str], capsys) -> str:
    """Run the CLI in-process; it must exit non-zero with one `raysearch: error:` line and no traceback."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("raysearch: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("argv, fragment", [
    (["fly"], "invalid choice: 'fly'"),
    (["train", "--epochs", "3"], "unrecognized arguments: --epochs 3"),
    (["train", "--threads", "many"], "argument --threads: invalid int value: 'many'"),
    (["recommend", "m", "--user", "u1"], "argument --user: invalid int value: 'u1'"),
    (["recommend", "m", "--user", "1", "--user-attrs", "gender=F"], "not allowed with argument --user"),
    (["export", "e"], "the following arguments are required: --out"),
])
def test_argument_errors_exit_2_with_usage(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2 and fragment in capsys.readouterr().err


@pytest.mark.parametrize("option, fragment", [
    ("learning_rat=0.1", "--set: unknown key 'learning_rat'"),
    ("epochs=ten", "--set: key 'epochs': expected int, got 'ten'"),
    ("epochs", "--set: expected key=value, got 'epochs'"),
    ("temperature=.nan", "--set: key 'temperature': expected a finite number, got nan"),
    ("seed=!!python/object/apply:os.system [true]", "--set: value '!!python/object/apply:os.system [true]' for key 'seed': not valid YAML"),
])
def test_bad_set_values_name_key_and_value(option, fragment, tmp_path, capsys):
    assert fragment in _fails(["train", "--set", option, "--out", str(tmp_path / "run")], capsys)
    assert fragment in _fails(["tune", "--space", str(SMOKE), "--set", option], capsys)
    assert not (tmp_path / "run").exists()


def test_missing_files_and_folders(tmp_path, capsys):
    assert "missing.yaml: config file not found" in _fails(["train", "--config", str(tmp_path / "missing.yaml")], capsys)
    assert "nope: search space file not found" in _fails(["tune", "--space", str(tmp_path / "nope")], capsys)
    (tmp_path / "file").write_text("x")
    assert "already holds files (or is a file)" in _fails(["train", "--out", str(tmp_path / "file")], capsys)


def test_export_errors(exported, tmp_path, capsys):
    experiment, _ = exported
    assert "already holds files" in _fails(["export", str(experiment), "--out", str(experiment)], capsys)
    broken = tmp_path / "broken"
    (broken / "best_checkpoint").mkdir(parents=True)
    (broken / "best_checkpoint" / "checkpoint.pt").write_bytes(b"not a zip")
    assert "checkpoint.pt: not a loadable raysearch checkpoint" in _fails(
        ["export", str(broken), "--out", str(tmp_path / "m")], capsys)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--user", "999999"], "user 999999 is not in the model's data; use --user-attrs for a new user"),
    (["--user-attrs", "occupation=astronaut"], "user attribute occupation='astronaut' is unknown to the model"),
    (["--user-attrs", "height=180"], "unknown user attribute 'height'"),
    (["--user-attrs", "age=old"], "user attribute age='old' is not a whole number of years"),
    (["--user-attrs", "gender"], "--user-attrs: expected key=value pairs separated by commas, got 'gender'"),
    (["--user", "196", "-k", "0"], "k must be >= 1"),
])
def test_recommend_errors(exported, args, fragment, capsys):
    assert fragment in _fails(["recommend", str(exported[1]), *args], capsys)


def test_recommend_from_a_damaged_model_folder(exported, tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.pt").write_bytes((exported[1] / "model.pt").read_bytes()[:1000])
    assert f"{model / 'model.pt'}: not a loadable raysearch checkpoint" in _fails(
        ["recommend", str(model), "--user", "196"], capsys)


def test_export_then_recommend(exported, capsys):
    assert cli.main(["recommend", str(exported[1]), "--user", "196", "-k", "3"]) == 0
    assert cli.main(["recommend", str(exported[1]), "--user-attrs", "gender=F,age=25,occupation=writer", "-k", "3"]) == 0
    assert capsys.readouterr().out.count("| 3 |") == 2


@pytest.mark.parametrize("option, fragment", [
    ("autorek.epochs=5", "--set: value 'autorek.epochs=5': unknown model 'autorek' before the dot"),
    ("mf.num_layers=2", "--set: value 'mf.num_layers=2': mf fixes num_layers=0"),
    ("deepfm.epochz=5", "--set: unknown key 'epochz' (value 'deepfm.epochz=5') for model deepfm"),
    ("epochz=5", "--set: unknown key 'epochz' (value 'epochz=5') for models fusion_gcn, mf"),
])
def test_compare_refuses_bad_model_scoped_set(option, fragment, tmp_path, capsys):
    assert fragment in _fails(["compare", "--models", "mf,deepfm", "--set", option, "--out", str(tmp_path / "r")],
                              capsys)
    assert not (tmp_path / "r").exists()


def test_train_writes_the_run_folder_and_prints_the_metrics(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["train", "--dataset", "ml-100k", "--split", "item_cold", "--data-dir", str(data_root),
                     "--set", "epochs=2", "--set", "contrastive_pairs=256", "--out", str(out),
                     "--metrics-out", str(tmp_path / "m.json"), "--threads", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "fusion_gcn on ml-100k item_cold: 943 users, 1682 items; train " in printed
    assert "epoch   2/2" in printed and "| test |" in printed
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics) == {"best_epoch", "valid", "test"} and 0 < metrics["test"]["hit@10"] <= 1
    assert TrainConfig.from_yaml(out / "config.yaml").epochs == 2
    assert cli.main(["train", "--data-dir", str(data_root), "--out", str(out)]) == 2
    assert "already holds files" in capsys.readouterr().err


def test_train_dispatches_any_model_through_the_registry(data_root, tmp_path, capsys):
    assert cli.main(["train", "--set", "model=popularity", "--split", "user_cold", "--data-dir", str(data_root),
                     "--out", str(tmp_path / "run"), "--threads", "1"]) == 0
    assert "popularity on ml-100k user_cold" in capsys.readouterr().out
    assert TrainConfig.from_yaml(tmp_path / "run" / "config.yaml").model == "popularity"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["best_epoch"] == 1
    assert "model 'popularity' needs interactions for the held-out items" in _fails(
        ["train", "--set", "model=popularity", "--split", "item_cold", "--data-dir", str(data_root),
         "--out", str(tmp_path / "cold")], capsys)
    assert not (tmp_path / "cold").exists()


def test_train_reports_user_errors(tmp_path, capsys):
    assert "key 'num_layers': expected int, got 'many'" in _fails(
        ["train", "--set", "num_layers=many", "--out", str(tmp_path / "x")], capsys)
    assert "dataset ml-100k not found" in _fails(["train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "y")],
                                                 capsys)
    assert "unknown key 'num_layers' (value 2) for model 'autorec'" in _fails(
        ["train", "--set", "model=autorec", "--set", "num_layers=2", "--out", str(tmp_path / "z")], capsys)
