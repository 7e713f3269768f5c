"""User errors of the search-side commands: clear messages and exit code 2, no Ray needed."""

from raysearch import cli


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
