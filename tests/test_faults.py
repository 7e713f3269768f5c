"""Faults injected for real (see raysearch/testing/faults.py): a Train worker and the `raysearch tune` driver killed
with SIGKILL, a config whose loss turns NaN, the disk a search uses, and storage that is read-only or full.

One 3-trial search on a tmpfs serves most tests: a worker of its first trial is killed after epoch 1
(or the next epoch polled), the second trial diverges, and the full-disk test fills that tmpfs after
the search. Where the sandbox cannot mount a tmpfs, the search runs in a temporary folder, read-only
storage becomes a path under a regular file (ENOTDIR) and the full-disk test is skipped.
"""

import math
import os
from contextlib import nullcontext

import pandas as pd
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from raysearch.testing.faults import (DIVERGING_TEMPERATURE, FIXED_BYTES, LOG_BYTES_PER_TRIAL, SEARCHED, TRIAL,
                                      best_config_matches, cli, disk_use, fill_and_resume, kill_driver_and_resume,
                                      result_lines, search_with_worker_kill, space_file, tmpfs, trial_dirs)

pytestmark = [pytest.mark.ray, pytest.mark.slow]
EPOCHS, KILL_AFTER, NUM_TO_KEEP, MAX_FAILURES = 5, 1, 1, 1  # smoke.yaml keeps max_failures at its default, 1


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
    """3 trials of 5 epochs, a Train worker of the first SIGKILLed after epoch 1, the second diverging."""
    space = space_file(tmp_path_factory.mktemp("space"), "faulty", 3, EPOCHS, diverging=True, num_to_keep=NUM_TO_KEEP,
                       workers=2)
    return search_with_worker_kill(space, ml100k, storage[0], KILL_AFTER)


def test_killed_worker_resumes_from_its_last_checkpoint(faulty):
    experiment, kill = faulty
    assert kill.trial is not None and KILL_AFTER <= kill.epoch_before < EPOCHS, "no worker killed mid-trial"
    with pytest.raises(ProcessLookupError):
        os.kill(kill.pid, 0)
    assert kill.recovery_seconds is not None
    epochs = [line["epoch"] for line in result_lines(kill.trial / "result.json")]
    assert epochs == list(range(1, EPOCHS + 1))  # after the restart, epoch_before + 1 onward, not 1 again
    trials = pd.read_csv(experiment / "trials.csv").set_index("path")
    row = trials.loc[str(kill.trial)]
    assert (row["status"], row["stopped_by"], row["epochs_run"]) == ("TERMINATED", "completed", EPOCHS)


def test_killed_one_worker_trial_resumes_from_its_best_checkpoint(ray_address, ml100k, tmp_path):
    """A one-worker trial trains in its Tune trial's process: Tune restarts it from its last checkpoint, that of
    its last improved epoch, so the epochs after that one run again, and never epoch 1 again. Killed after epoch
    2, when epoch 1's checkpoint is registered for sure (once, killed within ms of its first report, a trial
    restarted from scratch)."""
    space = space_file(tmp_path, "trialkill", 1, EPOCHS)
    experiment, kill = search_with_worker_kill(space, ml100k, tmp_path / "storage", 2, TRIAL)
    assert kill.trial is not None and 2 <= kill.epoch_before < EPOCHS, "no trial killed mid-way"
    assert kill.recovery_seconds is not None
    epochs = [line["epoch"] for line in result_lines(kill.trial / "result.json")]
    restart = next((i for i in range(1, len(epochs)) if epochs[i] <= epochs[i - 1]), len(epochs))
    before, after = epochs[:restart], epochs[restart:]
    assert before == list(range(1, restart + 1)) and restart >= kill.epoch_before
    assert (after or before)[-1] == EPOCHS and after == list(range(after[0] if after else 0, EPOCHS + 1))[:len(after)]
    assert not after or after[0] >= 2  # epoch 1 always improves, so it always has a checkpoint
    trials = pd.read_csv(experiment / "trials.csv")
    assert trials[["status", "stopped_by", "epochs_run"]].values.tolist() == [["TERMINATED", "completed", EPOCHS]]


def test_diverged_trial_ends_alone_and_is_never_best(faulty):
    experiment, _ = faulty
    trials = pd.read_csv(experiment / "trials.csv")
    diverged = trials[trials["param_temperature"] == DIVERGING_TEMPERATURE]
    others = trials[trials["param_temperature"] != DIVERGING_TEMPERATURE]
    assert len(diverged) >= 1 and len(others) >= 1 and len(trials) == 3
    assert (diverged["status"] == "ERROR").all() and (diverged["stopped_by"] == "diverged").all()
    assert diverged["error"].str.startswith("training diverged at epoch 1: the mean training loss is nan").all()
    assert (others["status"] == "TERMINATED").all() and others["error"].isna().all()
    assert best_config_matches(experiment, SEARCHED)
    assert yaml.safe_load((experiment / "best_config.yaml").read_text())["temperature"] != DIVERGING_TEMPERATURE


def test_no_nan_reaches_tensorboard_scalars_or_hparams(faulty):
    experiment, _ = faulty
    sessions = 0
    for trial in trial_dirs(experiment):
        for file in trial.glob("events.out.tfevents.*"):
            events = EventAccumulator(str(file))
            events.Reload()
            for tag in events.Tags()["scalars"]:
                assert all(math.isfinite(e.value) for e in events.Scalars(tag)), (trial.name, tag)
            if "ray/tune/epoch" not in events.Tags()["scalars"]:
                continue  # the diverged trial reported nothing, so Tune logged no HParams for it
            for content in events.PluginTagToContent("hparams").values():
                hparams = HParamsPluginData.FromString(content).session_start_info.hparams
                sessions += bool(hparams)
                assert all(math.isfinite(v.number_value) for v in hparams.values() if v.HasField("number_value"))
    assert sessions == 2  # the two trials that finished


def test_checkpoints_on_disk_stay_under_the_documented_bound(faulty):
    experiment, kill = faulty
    use = disk_use(experiment)
    killed = "train-" + kill.trial.name.split("_")[2]
    assert killed in use.checkpoints_per_run and len(use.checkpoints_per_run) == 3
    assert all(n <= NUM_TO_KEEP + 2 for run, n in use.checkpoints_per_run.items() if run != killed)
    assert use.checkpoints_per_run[killed] <= NUM_TO_KEEP + 2 + MAX_FAILURES  # + a checkpoint orphaned by the kill
    assert 0 < use.best_checkpoint <= use.largest_checkpoint
    assert use.total <= use.bound(3, NUM_TO_KEEP, MAX_FAILURES, LOG_BYTES_PER_TRIAL, FIXED_BYTES)


def test_read_only_storage_is_one_clear_error(ray_address, data_root, storage, tmp_path, monkeypatch):
    monkeypatch.setenv("RAYSEARCH_DATA_DIR", str(data_root))
    space = space_file(tmp_path, "readonly", 1, 1)
    if storage[1]:
        context = tmpfs(tmp_path / "ro", "1m", read_only=True)
    else:  # no mount here: a folder under a regular file is as unwritable, even for root
        (tmp_path / "file").write_text("")
        context = nullcontext(tmp_path / "file" / "sub")
    with context as target:
        code, errors = cli("tune", "--space", str(space), "--storage", str(target))
        assert code == 2 and len(errors) == 1
        assert errors[0].startswith(f"raysearch: error: {target}/readonly/search_space.yaml: cannot write there (")
        assert not (target / "readonly").exists()


def test_full_storage_leaves_no_partial_outputs_and_resume_completes(faulty, storage):
    """Runs after the other tests of the search: it fills the tmpfs the search used, then frees it."""
    experiment, _ = faulty
    if not storage[1]:
        pytest.skip("cannot mount a small tmpfs here to fill")
    expected = (experiment / "best_config.yaml").read_text()
    full = fill_and_resume(experiment, storage[0])
    assert full.exit_code == 2
    no_space = "cannot write there (No space left on device)"
    assert full.errors == [f"raysearch: error: {experiment}/best_checkpoint: {no_space}"]
    assert full.left == []  # neither best_config.yaml nor best_checkpoint/ nor a temp copy
    assert full.resume_exit_code == 0
    assert (experiment / "best_config.yaml").read_text() == expected
    assert (experiment / "best_checkpoint" / "checkpoint.pt").is_file()


def test_a_killed_multi_objective_search_resumes_to_its_front(ray_address, data_root, tmp_path):
    space = space_file(tmp_path, "front", 4, 2, warm_cold=True)
    killed = kill_driver_and_resume(space, tmp_path / "storage", ray_address, data_root, finished_before_kill=1)
    assert killed.lost == 0 and killed.duplicated == 0 and killed.study_trials == 4 and len(killed.trials) == 4
    front = pd.read_csv(tmp_path / "storage" / "front" / "pareto.csv")
    assert len(front) >= 1 and set(front["trial_id"]) <= set(killed.trials["trial_id"])


def test_killed_driver_resumes_without_losing_trials(ray_address, data_root, tmp_path):
    space = space_file(tmp_path, "smoke", 4, 2)
    killed = kill_driver_and_resume(space, tmp_path / "storage", ray_address, data_root, finished_before_kill=1)
    assert len(killed.finished_before) == 1 and all(killed.finished_before.values())
    assert killed.lost == 0  # every trial finished before the kill is there with identical results
    assert killed.duplicated == 0 and killed.trial_folders == 4 and killed.study_trials == 4
    assert len(killed.trials) == 4 and (killed.trials["status"] == "TERMINATED").all()
    assert best_config_matches(tmp_path / "storage" / "smoke", SEARCHED)
