"""Security: model files never unpickle code, files follow the user's umask, and a run writes only where told."""

from __future__ import annotations

import ast
import os
import re
import stat
from pathlib import Path

import pytest
import torch

from raysearch import cli, load_model
from raysearch.atomic_files import atomic_copy_dir, atomic_write_text
from raysearch.errors import DataError
from raysearch.export import export_model
from raysearch.train.checkpoint import load_checkpoint

PACKAGE = Path(__file__).resolve().parents[1] / "raysearch"


class Payload:
    """Unpickling this calls ``exec``: a checkpoint carrying it would write ``marker`` if loaded unsafely."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


def test_a_pickle_payload_in_a_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "marker"
    evil = tmp_path / "experiment" / "best_checkpoint" / "checkpoint.pt"
    evil.parent.mkdir(parents=True)
    torch.save({"format": "raysearch-checkpoint/2", "state_dict": {}, "payload": Payload(marker)}, evil)
    with pytest.raises(DataError, match="checkpoint.pt: not a loadable raysearch checkpoint"):
        load_checkpoint(evil)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.pt").write_bytes(evil.read_bytes())
    with pytest.raises(DataError, match="model.pt: not a loadable raysearch checkpoint"):
        load_model(tmp_path / "model")
    with pytest.raises(DataError, match="not a loadable raysearch checkpoint"):
        export_model(tmp_path / "experiment", tmp_path / "exported")
    assert not marker.exists() and not (tmp_path / "exported").exists()
    torch.load(evil, weights_only=False)  # the payload is live: an unsafe load runs it
    assert marker.read_text() == "pwned"


def _calls(name: str) -> list[ast.Call]:
    """Every call written as ``name(...)`` (e.g. ``torch.load``) in the package's source."""
    return [node for path in PACKAGE.rglob("*.py") for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and ast.unparse(node.func) == name]


def test_the_package_deserialises_only_without_code():
    loads = _calls("torch.load")
    assert loads and all(any(k.arg == "weights_only" and getattr(k.value, "value", None) is True for k in call.keywords)
                         for call in loads)
    assert not any(_calls(name) for name in ("pickle.load", "pickle.loads", "yaml.load", "yaml.unsafe_load",
                                               "yaml.full_load", "ray.cloudpickle.load"))
    assert all(not any(k.arg == "allow_pickle" and getattr(k.value, "value", None) is True for k in call.keywords)
               for call in _calls("np.load"))


def _modes(root: Path) -> set[tuple[str, int]]:
    return {("dir" if p.is_dir() else "file", stat.S_IMODE(p.stat().st_mode)) for p in [root, *root.rglob("*")]}


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_writes_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "source" / "a.txt", "a")
        atomic_copy_dir(tmp_path / "source", tmp_path / "copy")
    finally:
        os.umask(old)
    assert _modes(tmp_path / "copy") == {("dir", 0o777 & ~umask), ("file", 0o666 & ~umask)}
    assert stat.S_IMODE((tmp_path / "source" / "a.txt").stat().st_mode) == 0o666 & ~umask


@pytest.fixture(scope="module")
def confined_run(data_root, tmp_path_factory):
    """`raysearch train --out` and `raysearch export --out` under umask 027, from an empty working folder,
    with HOME and the temp folder pointing at empty folders of their own."""
    root = tmp_path_factory.mktemp("confined")
    places = {name: root / name for name in ("cwd", "home", "tmp", "runs")}
    for folder in places.values():
        folder.mkdir()
    run, model = places["runs"] / "train", places["runs"] / "model"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(places["cwd"])
        patch.setenv("HOME", str(places["home"]))
        patch.setenv("TMPDIR", str(places["tmp"]))
        patch.setattr("tempfile.tempdir", str(places["tmp"]))
        old = os.umask(0o027)
        try:
            assert cli.main(["train", "--data-dir", str(data_root), "--out", str(run), "--threads", "1",
                             "--set", "epochs=1", "--set", "embedding_dim=8", "--set", "num_layers=1",
                             "--set", "batch_size=8192", "--set", "contrastive_pairs=64", "--set", "num_negatives=4"]) == 0
            experiment = places["runs"] / "experiment"
            (experiment / "best_checkpoint").mkdir(parents=True)
            (experiment / "best_checkpoint" / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes())
            assert cli.main(["export", str(experiment), "--out", str(model)]) == 0
        finally:
            os.umask(old)
    return places, run, model


def test_run_and_export_files_follow_the_umask(confined_run):
    _, run, model = confined_run
    assert {"config.yaml", "checkpoint.pt", "metrics.json", "history.csv", "tensorboard"} <= {p.name for p in run.iterdir()}
    assert {"model.pt", "config.yaml", "metrics.json"} <= {p.name for p in model.iterdir()}
    assert _modes(run) | _modes(model) == {("dir", 0o750), ("file", 0o640)}


def test_nothing_is_written_outside_out(confined_run):
    places, run, model = confined_run
    assert [p.name for p in places["cwd"].iterdir()] == []  # no runs/ or stray files in the working folder
    assert [p.name for p in places["home"].iterdir()] == []
    # temp files were cleaned up; PyG keeps the propagate() code it generates once per process and class
    assert [p.name for p in places["tmp"].iterdir() if not re.fullmatch(r"[\w.]+_propagate_\w+\.py", p.name)] == []
    assert sorted(p.name for p in places["runs"].iterdir()) == ["experiment", "model", "train"]
