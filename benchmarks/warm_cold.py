"""Warm/cold Pareto search on ML-100K against single-objective searches of the same budget.

    python benchmarks/warm_cold.py [--space search_spaces/warm_cold.yaml] [--quick]

Runs the space's multi-objective search (warm and item-cold validation NDCG@10 on the mixed split), then the
same space searching one objective only, once for warm and once for item cold (same trials, same ASHA, same
split), and compares the front point by point with each single-objective search's best trial (its best
epoch's metrics on both parts): does the front reach both? Writes ``benchmarks/results/warm_cold_ml-100k.md``
and its front picture ``warm_cold_pareto.png`` (``--quick``: tiny budgets, ``*.quick.*`` files). Uses an
embedded local Ray with one logical CPU per core.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from raysearch.data.movielens import load_for
from raysearch.markdown import markdown_table
from raysearch.search.pareto import FRONT_FILE, FRONT_PLOT
from raysearch.search.space import SearchSpace, load_space
from raysearch.search.tuning import init_ray, search
from raysearch.train.checkpoint import CHECKPOINT_FILE, load_checkpoint

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def single(space: SearchSpace, metric: str) -> SearchSpace:
    """``space`` searching ``metric`` alone (its own early stopping, checkpoints and ASHA scalar)."""
    return dataclasses.replace(space, objectives=(), config=space.config.updated({"metric": metric}),
                               experiment=dataclasses.replace(space.experiment, name=f"only_{metric}"))


def best_point(experiment: Path, metrics: list[str]) -> list[float]:
    """The validation ``metrics`` of the experiment's best checkpoint (its best trial's best epoch)."""
    checkpoint = load_checkpoint(experiment / "best_checkpoint" / CHECKPOINT_FILE)
    return [checkpoint["metrics"][f"valid_{m}"] for m in metrics]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default=str(ROOT / "search_spaces" / "warm_cold.yaml"))
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny budgets")
    args = parser.parse_args()
    space = load_space(args.space)
    if args.quick:
        space = dataclasses.replace(space, config=space.config.updated({"epochs": 2, "embedding_dim": 16}),
                                    scheduler=dataclasses.replace(space.scheduler, grace_period=1),
                                    experiment=dataclasses.replace(space.experiment, num_samples=3, n_startup_trials=2))
    metrics = [o.metric for o in space.objectives]
    dataset = load_for(space.config)
    init_ray(None)
    suffix = ".quick" if args.quick else ""
    rows, walls = [], {}
    with tempfile.TemporaryDirectory() as storage:
        started = time.time()
        front = Path(search(space, dataset, storage, space.experiment.name).path)
        walls["Pareto search"] = time.time() - started
        points = pd.read_csv(front / FRONT_FILE, dtype={"trial_id": str})
        shutil.copyfile(front / FRONT_PLOT, RESULTS / f"warm_cold_pareto{suffix}.png")
        rows += [["Pareto front", row["trial_id"], *[f"{row[o.key]:.4f}" for o in space.objectives]]
                 for row in points.to_dict("records")]
        for metric in metrics:
            started = time.time()
            experiment = Path(search(single(space, metric), dataset, storage, f"only_{metric}").path)
            walls[f"{metric} only"] = time.time() - started
            values = best_point(experiment, metrics)
            beaten = points[[o.key for o in space.objectives]].ge(values).all(axis=1)
            rows.append([f"best of the {metric}-only search", "", *[f"{v:.4f}" for v in values]])
            rows.append([f"  front points at least as good on both", f"{int(beaten.sum())} of {len(points)}", "", ""])
    reach = {m: points[f"best_valid_{m}"].max() for m in metrics}
    lines = [f"# Warm/cold Pareto search: ML-100K ({os.cpu_count()} cores, torch {torch.__version__})", "",
             f"Command: `python benchmarks/warm_cold.py {' '.join(sys.argv[1:])}`", "",
             f"Space: `{space.source}`, {space.experiment.num_samples} trials per search, mixed split (seed "
             f"{space.config.seed}); validation NDCG@10 at each trial's best epoch by their mean. Each single-"
             "objective search is the same space searching that metric alone (its best trial, best epoch).", "",
             markdown_table(["search", "trial", *metrics], rows), "",
             "The front's best per objective: " + "; ".join(f"{m} {v:.4f}" for m, v in reach.items()) + ".", "",
             "Wall time: " + "; ".join(f"{k} {v / 60:.1f} min" for k, v in walls.items()) + ".", "",
             f"![front](warm_cold_pareto{suffix}.png)", ""]
    out = RESULTS / f"warm_cold_ml-100k{suffix}.md"
    out.write_text("\n".join(lines))
    print(out.read_text())


if __name__ == "__main__":
    main()
