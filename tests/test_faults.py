"""Faults injected for real (see tests/faults.py): a Train worker and the `raysearch tune` driver killed
with SIGKILL, a config whose loss turns NaN, the disk a search uses, and storage that is read-only or full.

One 3-trial search on a tmpfs serves most tests: a worker of its first trial is killed during epoch 2,
one trial diverges, and the full-disk test fills that tmpfs after the search. Where the sandbox cannot
mount a tmpfs, the search runs in a temporary folder, read-only storage becomes a path under a regular
file (ENOTDIR) and the full-disk test is skipped.
"""

import math
import os
import subprocess
from contextlib import nullcontext
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from faults import (DIVERGING_TEMPERATURE, WorkerKiller, best_config_matches, disk_use, fill, kill_driver_and_resume,
                    result_lines, space_file, tmpfs, trial_dirs)
from raysearch.cli import main
from raysearch.search_space import load_space
from raysearch.tuning import search

EPOCHS, KILL_AFTER, NUM_TO_KEEP = 4, 1, 1
PARAMS = ["contrastive_weight", "learning_rate", "num_layers", "temperature"]
LOG_BYTES_PER_TRIAL, FIXED_BYTES = 256 * 1024, 256 * 1024  # documented in benchmarks/results/reliability.md


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    """A 256 MiB tmpfs where the sandbox allows a mount, else a temporary folder (then ``mounted`` is False)."""
    folder = tmp_path_factory.mktemp("faults") / "storage"
    try:
        with tmpfs(folder, "256m") as mounted:
            yield mounted, True
    except OSError:
        folder.mkdir(exist_ok=True)
        yield folder, False


@pytest.fixture(scope="module")
def faulty(ray_address, ml100k, storage, tmp_path_factory):
    """3 trials of 4 epochs, one Train worker SIGKILLed during epoch 2, temperature 1e-40 diverging."""
    folder, _ = storage
    space = load_space(space_file(tmp_path_factory.mktemp("space"), "faulty", 3, EPOCHS, diverging=True,
                                  num_to_keep=NUM_TO_KEEP))
    killer = WorkerKiller(folder / "faulty", after_epoch=KILL_AFTER)
    killer.start()
    try:
        experiment = Path(search(space, ml100k, folder, "faulty").path)
    finally:
        killer.done.set()
        killer.join()
    return experiment, killer.kill


def test_killed_worker_resumes_from_its_last_checkpoint(faulty):
    experiment, kill = faulty
    assert kill.trial is not None and kill.epoch_before == KILL_AFTER, "no worker was killed"
    with pytest.raises(ProcessLookupError):
        os.kill(kill.pid, 0)
    assert kill.recovery_seconds is not None
    epochs = [line["epoch"] for line in result_lines(kill.trial / "result.json")]
    assert epochs == list(range(1, EPOCHS + 1))  # epoch 2 onward after the restart, not 1 again
    trials = pd.read_csv(experiment / "trials.csv").set_index("path")
    row = trials.loc[str(kill.trial)]
    assert (row["status"], row["stopped_by"], row["epochs_run"]) == ("TERMINATED", "completed", EPOCHS)


def test_diverged_trial_ends_alone_and_is_never_best(faulty):
    experiment, _ = faulty
    trials = pd.read_csv(experiment / "trials.csv")
    diverged = trials[trials["param_temperature"] == DIVERGING_TEMPERATURE]
    others = trials[trials["param_temperature"] != DIVERGING_TEMPERATURE]
    assert len(diverged) >= 1 and len(others) >= 1 and len(trials) == 3
    assert (diverged["status"] == "ERROR").all() and (diverged["stopped_by"] == "diverged").all()
    assert diverged["error"].str.startswith("training diverged at epoch 1: the mean training loss is nan").all()
    assert (others["status"] == "TERMINATED").all() and others["error"].isna().all()
    assert best_config_matches(experiment, PARAMS)
    assert yaml.safe_load((experiment / "best_config.yaml").read_text())["temperature"] != DIVERGING_TEMPERATURE


def test_no_nan_reaches_tensorboard_scalars_or_hparams(faulty):
    experiment, _ = faulty
    for trial in trial_dirs(experiment):
        for file in trial.glob("events.out.tfevents.*"):
            events = EventAccumulator(str(file))
            events.Reload()
            for tag in events.Tags()["scalars"]:
                assert all(math.isfinite(e.value) for e in events.Scalars(tag)), (trial.name, tag)
            for content in events.PluginTagToContent("hparams").values():
                hparams = HParamsPluginData.FromString(content).session_start_info.hparams
                assert all(math.isfinite(v.number_value) for v in hparams.values() if v.HasField("number_value"))


def test_checkpoints_on_disk_stay_under_the_documented_bound(faulty):
    experiment, _ = faulty
    use = disk_use(experiment)
    assert use.checkpoints_per_run and max(use.checkpoints_per_run.values()) <= NUM_TO_KEEP + 1
    assert 0 < use.best_checkpoint <= use.largest_checkpoint
    assert use.total <= use.bound(3, NUM_TO_KEEP, LOG_BYTES_PER_TRIAL, FIXED_BYTES)


def test_read_only_storage_is_one_clear_error(ray_address, storage, tmp_path, capsys):
    space = space_file(tmp_path, "readonly", 1, 1)
    if storage[1]:
        context = tmpfs(tmp_path / "ro", "1m", read_only=True)
    else:  # no mount here: a folder under a regular file is as unwritable, even for root
        (tmp_path / "file").write_text("")
        context = nullcontext(tmp_path / "file" / "sub")
    with context as target:
        assert main(["tune", "--space", str(space), "--storage", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith(f"raysearch: error: {target}/readonly/search_space.yaml: cannot write there (")
        assert not (target / "readonly").exists()


def test_full_storage_leaves_no_partial_outputs_and_resume_completes(faulty, storage, capsys):
    """Runs last: it fills the tmpfs the search used, then frees it."""
    experiment, _ = faulty
    if not storage[1]:
        pytest.skip("cannot mount a small tmpfs here to fill")
    expected = (experiment / "best_config.yaml").read_text()
    for name in ("trials.csv", "summary.md", "best_config.yaml"):
        (experiment / name).unlink()
    subprocess.run(["rm", "-r", str(experiment / "best_checkpoint")], check=True)
    fill(storage[0], leave=512 * 1024)  # room for trials.csv and Tune's state, not for a checkpoint
    try:
        assert main(["tune", "--resume", str(experiment)]) == 2
    finally:
        (storage[0] / "filler").unlink()
    err = capsys.readouterr().err
    assert f"raysearch: error: {experiment}/best_checkpoint: cannot write there (No space left on device)" in err
    assert not (experiment / "best_config.yaml").exists() and not (experiment / "best_checkpoint").exists()
    assert not list(experiment.glob(".best_*"))  # no temp copy left behind
    assert main(["tune", "--resume", str(experiment)]) == 0
    assert (experiment / "best_config.yaml").read_text() == expected
    assert (experiment / "best_checkpoint" / "checkpoint.pt").is_file()


def test_killed_driver_resumes_without_losing_trials(ray_address, data_root, tmp_path):
    space = space_file(tmp_path, "smoke", 4, 2)
    killed = kill_driver_and_resume(space, tmp_path / "storage", ray_address, data_root, finished_before_kill=1)
    assert len(killed.finished_before) == 1 and all(killed.finished_before.values())
    assert killed.lost == 0  # every trial finished before the kill is there with identical results
    assert killed.duplicated == 0 and killed.trial_folders == 4 and killed.study_trials == 4
    assert len(killed.trials) == 4 and (killed.trials["status"] == "TERMINATED").all()
    assert best_config_matches(tmp_path / "storage" / "smoke", PARAMS)
