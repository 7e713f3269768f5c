"""Ray search benchmark on ML-100K: DDP speed-up, Ray's per-trial overhead, and a 16-trial ASHA search.

    python benchmarks/search.py [--epochs 5] [--space search_spaces/default.yaml]

Writes ``benchmarks/results/search_ml-100k.md``. Uses an embedded local Ray with one logical CPU per core.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from raysearch.config import Scaling, TrainConfig
from raysearch.data.downloads import data_root, dataset_dir
from raysearch.data.movielens import load_dataset
from raysearch.data.protocols import make_split
from raysearch.search.distributed import make_trainer
from raysearch.search.space import Experiment, load_space
from raysearch.search.tuning import init_ray, search
from raysearch.train.fusion_gcn import run_epochs

RESULTS = Path(__file__).resolve().parent / "results"


def ddp_seconds_per_epoch(config: TrainConfig, dataset, workers: int, storage: str) -> float:
    """Mean training seconds per epoch (validation excluded) of a Ray Train run with ``workers`` workers."""
    scaling = Scaling(workers_per_trial=workers, cpus_per_worker=os.cpu_count() / workers)
    result = make_trainer(config, dataset, scaling, f"ddp-{workers}", storage).fit()
    return float(result.metrics_dataframe["epoch_seconds"].iloc[1:].mean())  # first epoch includes warm-up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the DDP and overhead runs")
    parser.add_argument("--space", default=str(Path(__file__).resolve().parents[1] / "search_spaces" / "default.yaml"))
    args = parser.parse_args()
    dataset = load_dataset("ml-100k", dataset_dir("ml-100k", data_root()))
    config = TrainConfig(epochs=args.epochs, patience=args.epochs)
    init_ray(None)
    lines = [f"# Ray search benchmark: ML-100K ({os.cpu_count()} cores, torch {torch.__version__})", "",
             f"Command: `python benchmarks/search.py {' '.join(sys.argv[1:])}`", ""]
    with tempfile.TemporaryDirectory() as storage:
        one, two = (ddp_seconds_per_epoch(config, dataset, w, storage) for w in (1, 2))
        lines += ["## (a) Data-parallel training: seconds per epoch (training only, epochs 2..)", "",
                  "| workers | CPUs per worker | s/epoch |", "|---|---|---|",
                  f"| 1 | {os.cpu_count()} | {one:.2f} |", f"| 2 | {os.cpu_count() / 2:g} | {two:.2f} |", "",
                  f"Speed-up with 2 workers: **{one / two:.2f}x**.", ""]

        torch.set_num_threads(1)
        started = time.perf_counter()
        run_epochs(config, dataset, make_split(dataset, config.split, config.seed))
        in_process = time.perf_counter() - started
        space = load_space(args.space)
        one_trial = dataclasses.replace(space.with_overrides([f"epochs={args.epochs}", f"patience={args.epochs}"]),
                                        experiment=Experiment(name="overhead", num_samples=1))
        started = time.perf_counter()
        search(one_trial, dataset, Path(storage), "overhead")
        in_ray = time.perf_counter() - started
        lines += ["## (b) Ray per-trial overhead", "",
                  f"One trial of {args.epochs} epochs inside `raysearch tune` (1 worker, 1 CPU): {in_ray:.1f} s; "
                  f"the same epochs with the in-process trainer (1 thread): {in_process:.1f} s; "
                  f"ratio **{in_ray / in_process:.2f}x**, overhead {in_ray - in_process:.1f} s per trial.", ""]

        started = time.perf_counter()
        experiment = search(space, dataset, Path(storage), space.experiment.name)
        wall = time.perf_counter() - started
        trials = pd.read_csv(str(experiment / "trials.csv"))
        budget = space.experiment.num_samples * space.config.epochs
        lines += [f"## (c) {space.experiment.num_samples}-trial search (`{Path(args.space).name}`)", "",
                  f"Epochs run under ASHA: **{int(trials['epochs_run'].sum())}** of "
                  f"{space.experiment.num_samples} x {space.config.epochs} = {budget} "
                  f"({trials['epochs_run'].sum() / budget:.0%}); trials stopped by ASHA: "
                  f"{int((trials['stopped_by'] == 'asha').sum())}, by patience: "
                  f"{int((trials['stopped_by'] == 'patience').sum())}; wall time {wall / 60:.1f} min.", "",
                  f"Best validation {space.metric}: **{trials['best_value'].max():.4f}**", "",
                  (experiment / "summary.md").read_text().split("\n", 2)[2]]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "search_ml-100k.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
