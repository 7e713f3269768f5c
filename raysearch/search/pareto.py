"""The Pareto front of a multi-objective search: the trials no other trial beats on every objective.

:func:`write_front` writes, in the experiment folder, ``pareto.csv`` (the front's trials: objectives, params,
epochs, checkpoint), ``pareto.png`` (every trial, the front drawn) and ``front_configs/<trial id>.yaml``
(each point's config, loadable with ``raysearch train --config``); ``raysearch export --trial`` exports any
point's checkpoint.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from raysearch.config import TrainConfig
from raysearch.markdown import markdown_table
from raysearch.search.space import SearchSpace
from raysearch.search.storage import Location

FRONT_FILE, FRONT_PLOT, FRONT_CONFIGS = "pareto.csv", "pareto.png", "front_configs"


def non_dominated(values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Mask of the rows of ``values`` (float [n, m], one column per objective) that no other row dominates.

    Row a dominates row b when a is at least as good on every objective and better on one (``maximize[j]``
    says which way objective j is better). Equal rows do not dominate each other, so duplicates on the
    front are all kept; a row with a NaN (a trial that reported no value) is never on the front.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(maximize):
        raise ValueError(f"expected values of shape [n, {len(maximize)}], got {list(values.shape)}")
    gains = np.where(np.asarray(maximize, dtype=bool), values, -values)  # larger is better in every column
    finite = ~np.isnan(gains).any(axis=1)
    at_least = (gains[:, None, :] >= gains[None, :, :]).all(axis=2)  # [a, b]: a is as good as b everywhere
    better = (gains[:, None, :] > gains[None, :, :]).any(axis=2)
    dominated = ((at_least & better) & finite[:, None]).any(axis=0)
    return finite & ~dominated


def front(space: SearchSpace, table: pd.DataFrame) -> pd.DataFrame:
    """The non-dominated finished trials of ``table`` (trials.csv's rows; finished: no error, every objective
    finite, a checkpoint kept), each objective taken at the trial's best epoch, sorted by the first objective."""
    keys = [o.key for o in space.objectives]
    finished = table[(table["error"] == "") & (table["checkpoint"] != "")].dropna(subset=keys)
    mask = non_dominated(finished[keys].to_numpy(float), [o.mode == "max" for o in space.objectives])
    columns = ["trial_id", *keys, *[f"param_{p.key}" for p in space.params], "stopped_by", "epochs_run",
               "best_epoch", "checkpoint"]
    return finished[mask][columns].sort_values(keys[0], ascending=space.objectives[0].mode == "min")


def write_front(space: SearchSpace, experiment: Location, table: pd.DataFrame,
                configs: dict[str, TrainConfig]) -> str:
    """Write the front's files (``configs``: each trial's config by id) and return summary.md's section on it."""
    from raysearch.search.plots import front_figure, png  # matplotlib only here

    points = front(space, table)
    (experiment / FRONT_FILE).write_text(points.to_csv(index=False))
    (experiment / FRONT_PLOT).write_bytes(png(front_figure(space, table, points)))
    for row in points.to_dict("records"):
        values = ", ".join(f"{o.metric} = {row[o.key]:.6f}" for o in space.objectives)
        (experiment / FRONT_CONFIGS / f"{row['trial_id']}.yaml").write_text(
            f"# Pareto-front trial {row['trial_id']}: {values} at epoch {int(row['best_epoch'])}\n"
            + configs[row["trial_id"]].to_yaml())
    shown = ["trial_id", *[o.key for o in space.objectives], *[f"param_{p.key}" for p in space.params]]
    return (f"\n## Pareto front ({len(points)} of {len(table)} trials)\n\n"
            + markdown_table(shown, points[shown].values.tolist())
            + f"\n\n[{FRONT_PLOT}]({FRONT_PLOT}): every trial and the front; each point's config is in "
            f"`{FRONT_CONFIGS}/<trial id>.yaml`; `raysearch export {experiment} --trial <trial id> --out DIR` "
            "exports its checkpoint.\n")
