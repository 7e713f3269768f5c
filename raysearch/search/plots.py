"""PNG plots that explain a finished search, written into its experiment folder (local or a bucket).

From the Optuna study (``optuna.journal``): the optimisation history, the searched parameters' importances
and a parallel-coordinate plot; from each trial's ``result.json``: the validation curves with ASHA's rungs.
Trials ASHA stopped are PRUNED in the study with their objective when stopped; the history, importances and
parallel coordinates count them at that value (ASHA stopped them for lagging at a rung), so a search whose
trials mostly stop early is still explained by all of them. A plot that cannot be computed (too few trials,
a single parameter, no journal) is skipped and the reason returned. Ray is not imported here.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from dataclasses import dataclass
from typing import Iterator

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import optuna.visualization.matplotlib as optuna_plots  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from optuna.importance import PedAnovaImportanceEvaluator  # noqa: E402
from optuna.storages import JournalStorage  # noqa: E402
from optuna.storages.journal import JournalFileBackend  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from raysearch.search.space import JOURNAL_FILE, SearchSpace  # noqa: E402
from raysearch.search.storage import Location, local_copy  # noqa: E402

HISTORY, IMPORTANCES, PARALLEL, CURVES = ("optimization_history.png", "param_importances.png",
                                          "parallel_coordinates.png", "validation_curves.png")
STYLES = {"asha": "--", "diverged": ":", "error": ":"}  # line style by stopped_by; others solid


@dataclass(frozen=True)
class Plots:
    """What :func:`write_plots` did: file name (in the experiment folder) -> one-line description, and
    plot file name -> why it was not drawn."""

    written: dict[str, str]
    skipped: dict[str, str]


@dataclass(frozen=True)
class Curve:
    """One trial's validation metric by epoch; an epoch reported twice (a trial restored from an earlier
    checkpoint) keeps its last report."""

    trial_id: str
    stopped_by: str
    epochs: list[int]
    values: list[float]


def write_plots(space: SearchSpace, experiment: Location, table: pd.DataFrame,
                study: optuna.Study | None = None) -> Plots:
    """Draw every plot that can be computed for the search in ``experiment`` (``table`` as in trials.csv;
    ``study`` read from its journal when not given) and write each PNG whole."""
    drawn: dict[str, tuple[Figure, str] | str] = {}
    with _local():
        study = study if study is not None else load_study(experiment)
        if study is None:
            drawn |= dict.fromkeys((HISTORY, IMPORTANCES, PARALLEL), f"no {JOURNAL_FILE} (Optuna study)")
        for target, suffix, label in _targets(space, study) if study is not None else []:
            scored = _scored_study(target)
            named = {name: name.replace(".png", f"{suffix}.png") for name in (HISTORY, IMPORTANCES, PARALLEL)}
            drawn[named[HISTORY]] = _history_plot(space, label, target)
            drawn[named[IMPORTANCES]] = _importance_plot(space, label, scored)
            drawn[named[PARALLEL]] = _parallel_plot(space, label, scored)
        drawn[CURVES] = _curves_plot(space, read_curves(space, experiment, table), len(table))
        for name, outcome in drawn.items():
            if isinstance(outcome, tuple):
                (experiment / name).write_bytes(png(outcome[0]))
    return Plots({name: outcome[1] for name, outcome in drawn.items() if isinstance(outcome, tuple)},
                 {name: why for name, why in drawn.items() if isinstance(why, str)})


def load_study(experiment: Location) -> optuna.Study | None:
    """The experiment's study copied into memory (a bucket's journal is downloaded first); None without one."""
    journal = experiment / JOURNAL_FILE
    if not journal.is_file():
        return None
    with local_copy(journal) as path:
        stored = optuna.load_study(study_name=None, storage=JournalStorage(JournalFileBackend(str(path))))
        study = optuna.create_study(directions=stored.directions)
        study.add_trials(stored.trials)
    return study


def _targets(space: SearchSpace, study: optuna.Study) -> list[tuple[optuna.Study, str, str]]:
    """(single-objective study, file-name suffix, label) to plot: the study itself, or for a multi-objective
    study one per objective (its trials with values, each valued by that objective)."""
    if len(study.directions) == 1:
        return [(study, "", _objective(space))]
    targets = []
    for index, objective in enumerate(space.objectives):
        target = optuna.create_study(direction=study.directions[index])
        target.add_trials([optuna.trial.create_trial(params=t.params, distributions=t.distributions, state=t.state,
                                                     value=t.values[index]) for t in study.trials if t.values])
        targets.append((target, f"_{objective.metric}", f"{objective.metric} at the best epoch"))
    return targets


def _scored_study(study: optuna.Study) -> optuna.Study:
    """Every trial with a finite objective as COMPLETE (ASHA-stopped ones at their value when stopped), in
    memory: Optuna's importances and parallel coordinates read COMPLETE trials only."""
    scored = optuna.create_study(direction=study.direction)
    scored.add_trials([optuna.trial.create_trial(params=t.params, distributions=t.distributions, value=t.value)
                       for t in study.trials if t.value is not None and math.isfinite(t.value)])
    return scored


def _history_plot(space: SearchSpace, label: str, study: optuna.Study) -> tuple[Figure, str] | str:
    """Each trial's objective in trial order (ASHA-stopped ones marked) and the best so far."""
    trials = [t for t in study.trials if t.value is not None and math.isfinite(t.value)]
    if not trials:
        return "no trial reported an objective"
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    for state, marker, kind in ((TrialState.COMPLETE, "o", "finished"),
                                (TrialState.PRUNED, "x", "stopped by ASHA (value when stopped)")):
        if chosen := [t for t in trials if t.state == state]:
            ax.scatter([t.number for t in chosen], [t.value for t in chosen], marker=marker, label=kind)
    best = (np.fmax if study.direction == optuna.study.StudyDirection.MAXIMIZE else np.fmin).accumulate(
        [t.value for t in trials])
    ax.step([t.number for t in trials], best, where="post", color="k", label="best so far")
    ax.set(xlabel="trial (Optuna number)", ylabel=label, title="Optimisation history")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    return fig, (f"{label} of each trial in trial order ({len(trials)} with an objective; x: stopped "
                 "by ASHA, at its value when stopped) and the best so far")


def _importance_plot(space: SearchSpace, label: str, scored: optuna.Study) -> tuple[Figure, str] | str:
    """PED-ANOVA importances (no scikit-learn needed) of the searched parameters."""
    params = _searched(space, scored)
    if len(scored.trials) < 2 or len(params) < 2:
        return (f"needs 2 trials with an objective and 2 searched parameters; the study has "
                f"{len(scored.trials)} and {len(params)}")
    ax = optuna_plots.plot_param_importances(scored, evaluator=PedAnovaImportanceEvaluator(), params=params,
                                             target_name=label)
    return _fitted(ax.figure), (f"PED-ANOVA importance of each searched parameter for reaching the top 10% of "
                                f"{label}, over {len(scored.trials)} trials (ASHA-stopped at their "
                                "value when stopped)")


def _parallel_plot(space: SearchSpace, label: str, scored: optuna.Study) -> tuple[Figure, str] | str:
    """One line per trial through its searched values, coloured by its objective."""
    params = _searched(space, scored)
    if len(scored.trials) < 2 or not params:
        return f"needs 2 trials with an objective; the study has {len(scored.trials)}"
    ax = optuna_plots.plot_parallel_coordinate(scored, params=params, target_name=label)
    return _fitted(ax.figure), (f"searched parameters of each of {len(scored.trials)} trials against "
                                f"{label} (ASHA-stopped at their value when stopped)")


def read_curves(space: SearchSpace, experiment: Location, table: pd.DataFrame) -> list[Curve]:
    """The ``space.metric`` curve of every trial in ``table`` whose folder (found by the name in ``path``, under
    ``experiment``, so a moved experiment still reads) holds a result.json with at least one epoch."""
    curves = []
    for row in table.itertuples():
        by_epoch = {int(line["epoch"]): float(line.get(space.metric, math.nan))
                    for line in _result_lines(experiment / str(row.path).rstrip("/").rsplit("/", 1)[-1])
                    if "epoch" in line}
        if by_epoch:
            epochs = sorted(by_epoch)
            curves.append(Curve(str(row.trial_id), str(row.stopped_by), epochs, [by_epoch[e] for e in epochs]))
    return curves


def rungs(space: SearchSpace) -> list[int]:
    """ASHA's rung epochs before the last: ``grace_period * reduction_factor**k``."""
    found, epoch = [], space.scheduler.grace_period
    while epoch < space.config.epochs:
        found.append(epoch)
        epoch *= space.scheduler.reduction_factor
    return found


def curves_figure(space: SearchSpace, curves: list[Curve]) -> Figure:
    """One line per trial (gid ``trial:<id>``; dashed and its stop marked when ASHA stopped it, dotted when it
    failed) and a vertical line (gid ``rung``) at each ASHA rung."""
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    for epoch in rungs(space):
        ax.axvline(epoch, color="k", linestyle="-.", linewidth=0.8, alpha=0.5, gid="rung")
    for curve in curves:
        style = STYLES.get(curve.stopped_by, "-")
        (line,) = ax.plot(curve.epochs, curve.values, style, gid=f"trial:{curve.trial_id}")
        if curve.stopped_by == "asha":
            ax.scatter(curve.epochs[-1:], curve.values[-1:], marker="x", color=line.get_color(), zorder=3)
    handles = [Line2D([], [], color="k", linestyle="-.", linewidth=0.8, alpha=0.5, label="ASHA rung"),
               Line2D([], [], color="k", label="finished"),
               Line2D([], [], color="k", linestyle="--", marker="x", label="stopped by ASHA (x: where)"),
               Line2D([], [], color="k", linestyle=":", label="failed or diverged")]
    ax.legend(handles=handles, fontsize="small")
    ax.set(xlabel="epoch", ylabel=space.metric, title=f"Validation curves ({len(curves)} trials)")
    return fig


def _curves_plot(space: SearchSpace, curves: list[Curve], trials: int) -> tuple[Figure, str] | str:
    """The curves figure of the ``trials`` in the table that reported an epoch."""
    if not curves:
        return "no trial folder holds a result.json with an epoch"
    epochs = ", ".join(map(str, rungs(space))) or "none"
    return curves_figure(space, curves), (f"{space.metric} by epoch of {len(curves)} of {trials} trials; dash-dotted "
                                          f"verticals: ASHA rungs (epochs {epochs}); dashed, x: stopped by ASHA there")


def front_figure(space: SearchSpace, table: pd.DataFrame, points: pd.DataFrame) -> Figure:
    """Every finished trial by its first two objectives, the Pareto front (``points``) drawn through its
    points, and the trial of the space's own config marked when it ran (``evaluate_config``)."""
    x, y = (o.key for o in space.objectives[:2])
    finished = table[table["error"] == ""].dropna(subset=[x, y])
    fig = Figure(figsize=(7, 5), layout="constrained")
    ax = fig.subplots()
    ax.scatter(finished[x], finished[y], color="0.6", label=f"trial ({len(finished)})")
    ordered = points.sort_values(x)
    ax.plot(ordered[x], ordered[y], "o-", color="C3", label=f"Pareto front ({len(points)})")
    for first in space.first_trials():
        shipped = finished[np.logical_and.reduce([_equal(finished[f"param_{k}"], v) for k, v in first.items()])]
        ax.scatter(shipped[x], shipped[y], marker="*", s=250, color="C0", zorder=3, label="the space's config")
    shown = space.objectives[:2]
    ax.set(xlabel=f"{shown[0].metric} ({shown[0].mode})", ylabel=f"{shown[1].metric} ({shown[1].mode})",
           title="Trials and their Pareto front" + (" (first two objectives)" if len(space.objectives) > 2 else ""))
    ax.legend()
    return fig


def _equal(column: pd.Series, value: object) -> np.ndarray:
    """Which entries of ``column`` are ``value`` (floats within rounding: a CSV round trip may change the last bit)."""
    if isinstance(value, float):
        return np.isclose(pd.to_numeric(column, errors="coerce"), value)
    return (column == value).to_numpy()


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes; a pyplot figure (Optuna's) is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _fitted(fig: Figure) -> Figure:
    """An Optuna figure enlarged and laid out so that long parameter names are not cut off."""
    fig.set_size_inches(8, 5)
    fig.tight_layout()
    return fig


def _result_lines(trial: Location) -> list[dict]:
    """The complete JSON lines of a trial's result.json (none when it has none; a torn last line is skipped)."""
    result = trial / "result.json"
    lines = []
    for text in result.read_text().splitlines() if result.is_file() else []:
        with contextlib.suppress(json.JSONDecodeError):
            lines.append(json.loads(text))
    return lines


def _searched(space: SearchSpace, study: optuna.Study) -> list[str]:
    """The space's params that every trial of ``study`` has (a skipped one would break Optuna's plots)."""
    return [p.key for p in space.params if study.trials and all(p.key in t.params for t in study.trials)]


def _objective(space: SearchSpace) -> str:
    return f"best {space.metric}"


@contextlib.contextmanager
def _local() -> Iterator[None]:
    """Every plot in Optuna's ggplot style (its plots set it process-wide; here it is undone on exit), without
    Optuna's ExperimentalWarning or 'study created' log lines."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings(), plt.style.context("ggplot"):
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", "Attempting to set identical low and high ylims")  # a one-value param
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)
