"""The search's explanatory plots, on a fake experiment built without Ray: an Optuna journal, trials.csv rows
and Tune-style trial folders with result.json."""

import json
import math
from pathlib import Path

import matplotlib
import numpy as np
import optuna
import pandas as pd
import pyarrow.fs as pafs
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState, create_trial
from PIL import Image

from raysearch.search.plots import (CURVES, HISTORY, IMPORTANCES, PARALLEL, curves_figure,
                                    read_curves, rungs, write_plots)
from raysearch.search.space import JOURNAL_FILE, parse_space
from raysearch.search.storage import Location, resolve

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PARAMS = {"learning_rate": {"type": "loguniform", "low": 1e-3, "high": 1e-1},
          "num_layers": {"type": "randint", "low": 0, "high": 3}}
DISTRIBUTIONS = {"learning_rate": FloatDistribution(1e-3, 1e-1, log=True), "num_layers": IntDistribution(0, 3)}
# trial id -> (stopped_by, learning_rate, num_layers, valid_ndcg@10 by epoch); ASHA rungs at epochs 1, 2, 4 of 6
TRIALS = {"t0": ("completed", 0.01, 1, [0.10, 0.20, 0.25, 0.30, 0.31, 0.32]),
          "t1": ("asha", 0.002, 0, [0.05]),
          "t2": ("asha", 0.05, 3, [0.12, 0.15]),
          "t3": ("patience", 0.02, 2, [0.11, 0.22, 0.21, 0.20]),
          "t4": ("completed", 0.005, 2, [0.09, 0.18, 0.26, 0.29, 0.33, 0.34]),
          "t5": ("diverged", 0.09, 3, [0.02, math.nan])}  # FAIL in the study: no objective


def make_space(params=PARAMS, epochs=6, grace_period=1, reduction_factor=2):
    return parse_space({"config": {"epochs": epochs}, "params": params,
                        "scheduler": {"grace_period": grace_period, "reduction_factor": reduction_factor}}, "test")


def make_experiment(folder: Path, trials=TRIALS, params=("learning_rate", "num_layers"), journal=True) -> pd.DataFrame:
    """Trial folders with result.json, the study's journal (unless not ``journal``) and the trials.csv table."""
    folder.mkdir(exist_ok=True)
    study = optuna.create_study(study_name=folder.name, direction="maximize", storage=JournalStorage(
        JournalFileBackend(str(folder / JOURNAL_FILE)))) if journal else None
    rows = []
    for number, (trial_id, (stopped_by, lr, layers, curve)) in enumerate(trials.items()):
        values = {"learning_rate": lr, "num_layers": layers}
        trial_dir = folder / f"run_trial_{trial_id}_{number + 1:05d}_{number}"
        trial_dir.mkdir(parents=True)
        best = [max(curve[:i + 1]) if not math.isnan(curve[i]) else math.nan for i in range(len(curve))]
        trial_dir.joinpath("result.json").write_text("".join(
            json.dumps({"epoch": e + 1, "valid_ndcg@10": v, "best_value": b, "trial_id": trial_id}) + "\n"
            for e, (v, b) in enumerate(zip(curve, best))))
        if study is not None and stopped_by == "diverged":
            study.add_trial(create_trial(params={k: values[k] for k in params}, state=TrialState.FAIL,
                                         distributions={k: DISTRIBUTIONS[k] for k in params}))
        elif study is not None:
            study.add_trial(create_trial(
                params={k: values[k] for k in params}, distributions={k: DISTRIBUTIONS[k] for k in params},
                value=best[-1], intermediate_values=dict(enumerate(best, start=1)),
                state=TrialState.PRUNED if stopped_by == "asha" else TrialState.COMPLETE))
        rows.append({"trial_id": trial_id, "status": "TERMINATED", "stopped_by": stopped_by,
                     "epochs_run": len(curve), "best_epoch": best.index(best[-1]) + 1, "best_value": best[-1],
                     "error": "", **{f"param_{k}": values[k] for k in params},
                     "final_valid_ndcg@10": curve[-1], "path": str(trial_dir)})
    return pd.DataFrame(rows)


def assert_pngs(folder: Path, written: dict[str, str]) -> None:
    assert sorted(p.name for p in folder.glob("*.png")) == sorted(written)
    for name, description in written.items():
        data = (folder / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and description and "\n" not in description
        with Image.open(folder / name) as image:
            image.verify()
        with Image.open(folder / name) as image:
            assert image.format == "PNG" and min(image.size) > 100


def test_every_plot_is_written_as_a_png_from_the_journal(tmp_path):
    experiment = tmp_path / "exp"
    table = make_experiment(experiment)
    style = dict(matplotlib.rcParams)
    plots = write_plots(make_space(), resolve(experiment), table)
    assert dict(matplotlib.rcParams) == style  # Optuna's ggplot style does not leak out
    assert plots.skipped == {}
    assert set(plots.written) == {HISTORY, IMPORTANCES, PARALLEL, CURVES}
    assert_pngs(experiment, plots.written)
    assert "epochs 1, 2, 4" in plots.written[CURVES] and "6 of 6 trials" in plots.written[CURVES]
    assert "5 with an objective" in plots.written[HISTORY]  # t5 diverged: FAIL


def test_table_read_back_from_csv_and_a_moved_experiment_still_plot(tmp_path):
    table = make_experiment(tmp_path / "exp")
    (tmp_path / "exp").rename(tmp_path / "moved")  # the path column now names a folder that is gone
    (tmp_path / "trials.csv").write_text(table.to_csv(index=False))
    plots = write_plots(make_space(), resolve(tmp_path / "moved"), pd.read_csv(tmp_path / "trials.csv"))
    assert set(plots.written) == {HISTORY, IMPORTANCES, PARALLEL, CURVES}


def test_curves_draw_one_line_per_trial_with_the_asha_rungs_and_stops(tmp_path):
    space = make_space()
    curves = read_curves(space, resolve(tmp_path), make_experiment(tmp_path))
    ax = curves_figure(space, curves).axes[0]
    trial_lines = {line.get_gid(): line for line in ax.lines if str(line.get_gid()).startswith("trial:")}
    assert sorted(trial_lines) == [f"trial:{t}" for t in TRIALS]
    assert [list(line.get_xdata()) for line in ax.lines if line.get_gid() == "rung"] == [[1, 1], [2, 2], [4, 4]]
    assert len(ax.lines) == len(TRIALS) + 3
    for trial_id, (stopped_by, *_, curve) in TRIALS.items():
        line = trial_lines[f"trial:{trial_id}"]
        np.testing.assert_array_equal(line.get_ydata(), curve)
        assert line.get_linestyle() == {"asha": "--", "diverged": ":"}.get(stopped_by, "-")
    stops = sorted(tuple(point) for collection in ax.collections for point in collection.get_offsets())
    assert stops == [(1.0, 0.05), (2.0, 0.15)]  # t1 and t2, where ASHA stopped them


def test_an_epoch_reported_twice_keeps_its_last_report(tmp_path):
    table = make_experiment(tmp_path, {"t0": TRIALS["t0"]})
    result = Path(table.loc[0, "path"]) / "result.json"
    result.write_text(result.read_text() + json.dumps({"epoch": 6, "valid_ndcg@10": 0.4}) + "\n{\"epoch\": 7, ")
    (curve,) = read_curves(make_space(), resolve(tmp_path), table)
    assert curve.epochs == [1, 2, 3, 4, 5, 6] and curve.values[-1] == 0.4  # the torn last line is skipped


@pytest.mark.parametrize("grace_period, reduction_factor, epochs, expected", [
    (1, 2, 6, [1, 2, 4]), (1, 2, 8, [1, 2, 4]), (2, 3, 30, [2, 6, 18]), (3, 2, 3, [])])
def test_rungs_are_asha_milestones_before_the_last_epoch(grace_period, reduction_factor, epochs, expected):
    assert rungs(make_space(epochs=epochs, grace_period=grace_period, reduction_factor=reduction_factor)) == expected


def test_one_trial_skips_importances_and_parallel_coordinates(tmp_path):
    table = make_experiment(tmp_path, {"t0": TRIALS["t0"]})
    plots = write_plots(make_space(), resolve(tmp_path), table)
    assert set(plots.written) == {HISTORY, CURVES} and set(plots.skipped) == {IMPORTANCES, PARALLEL}
    assert "2 trials" in plots.skipped[IMPORTANCES]
    assert_pngs(tmp_path, plots.written)


def test_one_parameter_skips_importances_only(tmp_path):
    table = make_experiment(tmp_path, params=("learning_rate",))
    space = make_space({"learning_rate": PARAMS["learning_rate"]})
    plots = write_plots(space, resolve(tmp_path), table)
    assert set(plots.written) == {HISTORY, PARALLEL, CURVES} and set(plots.skipped) == {IMPORTANCES}
    assert "2 searched parameters" in plots.skipped[IMPORTANCES]
    assert_pngs(tmp_path, plots.written)


def test_without_a_journal_only_the_curves_are_drawn(tmp_path):
    plots = write_plots(make_space(), resolve(tmp_path), make_experiment(tmp_path, journal=False))
    assert set(plots.written) == {CURVES}
    assert all(JOURNAL_FILE in why for why in plots.skipped.values()) and len(plots.skipped) == 3


def test_a_given_study_is_used_and_trials_without_a_value_are_left_out(tmp_path):
    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(params={"learning_rate": 0.01, "num_layers": 1}, distributions=DISTRIBUTIONS,
                                 value=0.3))
    study.add_trial(create_trial(params={"learning_rate": 0.02, "num_layers": 2}, distributions=DISTRIBUTIONS,
                                 state=TrialState.FAIL))
    study.add_trial(create_trial(params={"learning_rate": 0.03, "num_layers": 0}, distributions=DISTRIBUTIONS,
                                 state=TrialState.PRUNED))  # stopped before it reported
    plots = write_plots(make_space(), resolve(tmp_path), make_experiment(tmp_path, journal=False), study=study)
    assert set(plots.written) == {HISTORY, CURVES} and "1 with an objective" in plots.written[HISTORY]


def test_a_bucket_location_reads_the_journal_and_writes_whole_objects(tmp_path):
    """A non-local Location takes the object-store path (downloaded journal, one output stream per PNG)."""
    table = make_experiment(tmp_path / "exp")
    bucket = Location(pafs.LocalFileSystem(), str(tmp_path / "exp"), "mock")
    plots = write_plots(make_space(), bucket, table)
    assert set(plots.written) == {HISTORY, IMPORTANCES, PARALLEL, CURVES}
    assert_pngs(tmp_path / "exp", plots.written)
