"""Ray search benchmark on ML-100K: what a search spends its time on, and how fast it finds a good model.

    python benchmarks/search.py [--space search_spaces/default.yaml] [--seeds 3] [--quick]

(a) seconds per epoch of a Ray Train run with 2 workers vs 1 (of 1 CPU and of all CPUs), at equal optimizer
    steps per epoch, at the default batch and a larger one; the same as plain torch DDP without Ray, and the cores
    Ray's own processes take meanwhile; and the machine's ceiling for it (two independent one-thread copies of the
    training at once against one alone);
(b) per-trial overhead (wall time between trial ends minus the epochs' training and validation time), median and max
    over 8 one-worker trials run one at a time; (c) the space's own search (16 trials): wall time and best
    validation metric; (d) wall time until a search first reaches 98% of the best validation metric the ASHA + TPE
    searches found: ASHA + TPE (the space) vs random search without early stopping, the same trials,
    for each of ``--seeds`` TPE seeds, neither starting from the space's config; a random search stops at the
    target or at ``CAP`` times the longest ASHA + TPE search.

Writes ``benchmarks/results/search_ml-100k.md`` (``--quick``: a smoke run of every part with tiny budgets,
written to ``search_ml-100k.quick.md``). Uses an embedded local Ray with one logical CPU per core.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import torch
from ray import tune

from raysearch.config import Scaling, TrainConfig
from raysearch.data.movielens import Dataset, load_for
from raysearch.data.protocols import make_split
from raysearch.markdown import markdown_table
from raysearch.search.distributed import make_trainer
from raysearch.search.space import OBJECTIVE, SearchSpace, load_space
from raysearch.search.tuning import init_ray, search
from raysearch.train.fusion_gcn import run_epochs
from raysearch.train.ranks import Ranks

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
CAP = 3.0  # a random search not at the target after CAP x the longest ASHA + TPE search is reported as not reached


class Timeline(tune.Callback):
    """Wall-clock times, on the Tune driver, of each trial's end and of every result."""

    def __init__(self) -> None:
        self.started = time.time()
        self.starts: dict[str, float] = {}
        self.ends: dict[str, float] = {}
        self.results: list[tuple[float, str, dict[str, Any]]] = []

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.results.append((time.time(), trial.trial_id, result))

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.starts.setdefault(trial.trial_id, time.time())

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ends[trial.trial_id] = time.time()

    def setup_seconds(self) -> float:
        """Seconds from the search's start to its first trial's start: the search's setup (split, Optuna study,
        Tune, the first trial actor's process and imports), paid once per search since trials reuse actors."""
        return min(self.starts.values()) - self.started

    def overheads(self) -> list[float]:
        """Per finished trial of a search running one trial at a time: the time since the previous trial ended
        (the first trial's start, once its actor is up, for the first) minus the training and validation time
        of its epochs."""
        epochs = {trial: 0.0 for trial in self.ends}
        for _, trial, result in self.results:
            if trial in epochs:
                epochs[trial] += result["epoch_seconds"] + result["eval_seconds"]
        ends = sorted(self.ends.items(), key=lambda item: item[1])
        previous = [self.starts[ends[0][0]]] + [end for _, end in ends[:-1]]
        return [end - before - epochs[trial] for (trial, end), before in zip(ends, previous)]

    def time_to(self, target: float) -> float | None:
        """Seconds from the search's start until a trial first reported an objective >= ``target``."""
        return next((at - self.started for at, _, result in self.results if result[OBJECTIVE] >= target), None)


def variant(space: SearchSpace, name: str, seed: int, overrides: list[str], grace: int | None = None,
            **experiment: Any) -> SearchSpace:
    """``space`` renamed and TPE-seeded, with config ``overrides`` (none of them searched), ASHA's ``grace`` period
    (capped at the epochs; ``grace`` = epochs: no early stop) and ``experiment`` changes."""
    config = space.config.with_overrides(overrides)
    grace = min(grace or space.scheduler.grace_period, config.epochs)
    return dataclasses.replace(space, config=config, scheduler=dataclasses.replace(space.scheduler, grace_period=grace),
                               experiment=dataclasses.replace(space.experiment, name=name, seed=seed, **experiment))


def random_search(space: SearchSpace, name: str, seed: int) -> SearchSpace:
    """The same trials drawn at random (all TPE start-up trials), every one run to the end (no ASHA, no patience)."""
    epochs, trials = space.config.epochs, space.experiment.num_samples
    return variant(space, name, seed, [f"patience={epochs}"], grace=epochs, n_startup_trials=trials)


def timed_search(space: SearchSpace, dataset: Dataset, storage: Path,
                 stop: tune.Stopper | None = None) -> tuple[Timeline, float, pd.DataFrame]:
    timeline = Timeline()
    experiment = search(space, dataset, storage, space.experiment.name, callbacks=[timeline], stop=stop)
    return timeline, time.time() - timeline.started, pd.read_csv(str(experiment / "trials.csv"))


BATCHES = (2048, 8192)  # (a): the default batch, and one whose per-rank share outweighs the whole-graph pass


class OtherProcessesCpu:
    """Cores' worth of CPU that every process but the Ray Train workers used while the workers ran (sampled every
    2 s from the first moment they are up to the last): what Ray itself takes from the cores they train on."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, dict[int, float], bool]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "OtherProcessesCpu":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()

    def _sample(self) -> None:
        while not self.done.wait(2.0):
            times, workers = {}, False
            for process in psutil.process_iter(["cmdline", "cpu_times"]):
                if "RayTrainWorker" in " ".join(process.info["cmdline"] or []):
                    workers = True
                elif process.info["cpu_times"] is not None:
                    times[process.pid] = process.info["cpu_times"].user + process.info["cpu_times"].system
            self.samples.append((time.time(), times, workers))

    def cores(self) -> float:
        running = [(at, times) for at, times, workers in self.samples if workers]
        (first, before), (last, after) = running[0], running[-1]
        return sum(after[pid] - before[pid] for pid in after.keys() & before.keys()) / (last - first)


def ray_layouts(config: TrainConfig, dataset: Dataset,
                storage: str) -> tuple[dict[tuple[int, float], float], list, float]:
    """Mean training seconds per epoch (epochs 2..) of Ray Train runs of one worker with one CPU, one with all CPUs
    and two sharing them; the table rows; and the cores Ray's own processes used during the two-worker run."""
    cpus = os.cpu_count()
    seconds, rows, ray_cores = {}, [], 0.0
    for workers, per_worker in ((1, 1.0), (1, cpus), (2, cpus / 2)):
        scaling = Scaling(workers_per_trial=workers, cpus_per_worker=per_worker)
        with OtherProcessesCpu() as others:
            name = f"ddp-{config.batch_size}-{workers}x{per_worker:g}"
            frame = make_trainer(config, dataset, scaling, name, storage).fit().metrics_dataframe
        ray_cores = others.cores() if workers == 2 else ray_cores
        last = frame.loc[frame["epoch"].idxmax()]
        seconds[workers, per_worker] = frame.loc[frame["epoch"] >= 2, "epoch_seconds"].mean()
        rows.append([config.batch_size, workers, f"{per_worker:g}", int(last["train_steps"] / last["epoch"]),
                     f"{seconds[workers, per_worker]:.2f}", f"{last['valid_ndcg@10']:.4f}"])
    return seconds, rows, ray_cores


def torch_ddp_worker(rank: int, world: int, port: int, config: TrainConfig, dataset: Dataset,
                     seconds: Any) -> None:
    """One rank of a plain torch DDP run (gloo, one thread, no Ray) of the same :func:`run_epochs` Ray Train runs."""
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    times = []
    run_epochs(config, dataset, make_split(dataset, config.split, config.seed),
               lambda metrics, checkpoint, improved: times.append(metrics["epoch_seconds"]),
               ranks=Ranks(rank, world), wrap=torch.nn.parallel.DistributedDataParallel if world > 1 else lambda m: m)
    seconds.put(statistics.mean(times[1:]))
    torch.distributed.destroy_process_group()


def torch_ddp_epochs(config: TrainConfig, dataset: Dataset, world: int) -> float:
    """Mean training seconds per epoch (epochs 2..) of ``world`` one-thread ranks of plain torch DDP, no Ray."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    seconds = torch.multiprocessing.get_context("spawn").SimpleQueue()
    torch.multiprocessing.spawn(torch_ddp_worker, (world, port, config, dataset, seconds), nprocs=world)
    return max(seconds.get() for _ in range(world))


def ddp_epochs(config: TrainConfig, dataset: Dataset, storage: str) -> list[str]:
    """(a): at each of ``BATCHES``, seconds per epoch of Ray Train runs of one worker with one CPU, one worker with all
    CPUs and two workers sharing them, at equal optimizer steps per epoch; the same one-CPU and two-worker runs as
    plain torch DDP without Ray; and the cores Ray's own processes took while two workers trained."""
    cpus = os.cpu_count()
    rows, lines = [], []
    for batch in BATCHES:
        sized = config.with_overrides([f"batch_size={batch}"])
        seconds, layout_rows, ray_cores = ray_layouts(sized, dataset, storage)
        rows.extend(layout_rows)
        one_cpu, all_cpus, two = seconds[1, 1.0], seconds[1, cpus], seconds[2, cpus / 2]
        plain_one, plain_two = torch_ddp_epochs(sized, dataset, 1), torch_ddp_epochs(sized, dataset, 2)
        lines.append(f"- batch {batch}: two workers of {cpus / 2:g} CPU are **{one_cpu / two:.2f}x** one worker of "
                     f"1 CPU and {all_cpus / two:.2f}x one worker of {cpus} CPUs under Ray. Plain torch DDP of the "
                     f"same training, no Ray: {plain_one:.2f} s per epoch on one rank, {plain_two:.2f} s on two, "
                     f"**{plain_one / plain_two:.2f}x**. While the two Ray workers trained, Ray's own processes "
                     f"(controller, placement-group cleaner, GCS, raylet, dashboard, ...) used "
                     f"{ray_cores:.2f} of the {cpus} cores.")
    return ["## (a) Data-parallel training: seconds per epoch at equal optimizer steps", "",
            f"Ray Train runs of {config.epochs} epochs (default config at each batch size), training time of "
            "epochs 2..:", "",
            markdown_table(["batch", "workers", "CPUs per worker", "steps per epoch", "s/epoch",
                            "valid NDCG@10 at the end"], rows), "", *lines, ""]


def one_thread_epochs(config: TrainConfig, dataset: Dataset) -> float:
    """Mean training seconds per epoch (epochs 2..) of an in-process run on one torch thread, no Ray."""
    torch.set_num_threads(1)
    seconds = []
    run_epochs(config, dataset, make_split(dataset, config.split, config.seed),
               lambda metrics, checkpoint, improved: seconds.append(metrics["epoch_seconds"]))
    return statistics.mean(seconds[1:])


def independent_copies(config: TrainConfig, dataset: Dataset) -> list[str]:
    """The machine's own ceiling for (a): the same one-thread training alone and as two copies at once (separate
    processes sharing nothing), so two copies' throughput over one says what any two workers could gain here."""
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        alone = pool.apply(one_thread_epochs, (config, dataset))
        both = pool.starmap(one_thread_epochs, [(config, dataset)] * 2)
    gain = 2 * alone / statistics.mean(both)
    return [f"The machine's ceiling: the same training on one thread without Ray takes {alone:.2f} s per epoch alone "
            f"and {statistics.mean(both):.2f} s as two independent copies at once (separate processes), so two "
            f"copies get through **{gain:.2f}x** the work of one: the most any two workers of 1 CPU could "
            f"gain over one here, before any communication.", ""]


def overhead(space: SearchSpace, dataset: Dataset, storage: Path, trials: int, epochs: int) -> list[str]:
    """(b): one-worker trials of ``epochs`` epochs, one at a time, none stopped early."""
    one_by_one = variant(space, "overhead", 0, [f"epochs={epochs}", f"patience={epochs}"], grace=epochs,
                         num_samples=trials, n_startup_trials=None, max_concurrent_trials=1)
    timeline, wall, _ = timed_search(one_by_one, dataset, storage)
    seconds = timeline.overheads()
    return ["## (b) Per-trial overhead", "",
            f"{len(seconds)} one-worker trials of {epochs} epochs, one at a time ({wall:.1f} s in all). A trial's "
            "overhead is the wall time from the previous trial's end (for the first, its own start once its actor "
            "was up) to its own end, minus its epochs' training and validation time: median "
            f"**{statistics.median(seconds):.2f} s**, max **{max(seconds):.2f} s** "
            f"(all: {', '.join(f'{s:.2f}' for s in seconds)}). The search's setup before its first trial started "
            f"(split, Optuna study, Tune, the first trial actor's process and imports) took {timeline.setup_seconds():.2f} s, "
            "once per search: the next trials reuse the actor.", ""]


def default_search(space: SearchSpace, dataset: Dataset, storage: Path) -> list[str]:
    """(c): the space's own search, as the README's main command runs it."""
    _, wall, trials = timed_search(space, dataset, storage)
    budget = space.experiment.num_samples * space.config.epochs
    source = Path(space.source).resolve()
    shown = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
    return [f"## (c) The {space.experiment.num_samples}-trial search (`{shown}`)", "",
            f"Wall time **{wall / 60:.1f} min**; best validation {space.metric}: **{trials['best_value'].max():.4f}**. "
            f"Epochs run: {int(trials['epochs_run'].sum())} of {budget}; trials stopped by ASHA: "
            f"{int((trials['stopped_by'] == 'asha').sum())}, by patience: {int((trials['stopped_by'] == 'patience').sum())}.",
            "", markdown_table(["trial_id", "stopped_by", "epochs_run", "best_epoch", "best_value"],
                               trials.sort_values("best_value", ascending=False)[
                                   ["trial_id", "stopped_by", "epochs_run", "best_epoch", "best_value"]].head(10)
                               .values.tolist()), ""] + (
        ["Its first trial ran the space's own config values (`evaluate_config`).", ""]
        if space.experiment.evaluate_config else [])


class Target(tune.Stopper):
    """Ends a search once a trial reports an objective >= ``target``, or ``cap`` seconds after it started."""

    def __init__(self, target: float, cap: float) -> None:
        self.target, self.deadline, self.reached = target, time.time() + cap, False

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        self.reached |= result[OBJECTIVE] >= self.target
        return False

    def stop_all(self) -> bool:
        return self.reached or time.time() > self.deadline


def time_to_target(space: SearchSpace, dataset: Dataset, storage: Path, seeds: int) -> list[str]:
    """(d): ASHA + TPE vs random search without early stopping, per TPE seed, neither starting from the space's
    config (``evaluate_config`` off: that first trial alone would decide the race). The target is 98% of the best
    the ASHA + TPE searches found; a random search ends once it reaches the target, or at ``CAP`` times the
    longest ASHA + TPE search, when it reports "not reached"."""
    space = dataclasses.replace(space, experiment=dataclasses.replace(space.experiment, evaluate_config=False))
    asha = {seed: timed_search(variant(space, f"asha-{seed}", seed, []), dataset, storage) for seed in range(seeds)}
    target = 0.98 * max(trials["best_value"].max() for _, _, trials in asha.values())
    cap = CAP * max(wall for _, wall, _ in asha.values())
    runs = {("ASHA + TPE", seed): run for seed, run in asha.items()}
    for seed in range(seeds):
        runs["random, no early stopping", seed] = timed_search(random_search(space, f"random-{seed}", seed), dataset,
                                                               storage, Target(target, cap))
    minutes: dict[str, list[float]] = {}
    rows = []
    for (method, seed), (timeline, wall, trials) in runs.items():
        reached = timeline.time_to(target)
        minutes.setdefault(method, []).append(math.inf if reached is None else reached / 60)
        rows.append([method, seed, "not reached" if reached is None else f"{reached / 60:.1f}", f"{wall / 60:.1f}",
                     f"{trials['best_value'].max():.4f}"])
    medians = {method: statistics.median(values) for method, values in minutes.items()}
    return ["## (d) Time to 98% of the best validation metric", "",
            f"Target: 98% of the best {space.metric} the ASHA + TPE searches found ({target / 0.98:.4f}) = "
            f"{target:.4f}; {space.experiment.num_samples} trials each, TPE seeds 0..{seeds - 1}, neither search starting from "
            "the space's config (that first trial alone would decide the race). A random search "
            f"(every trial to {space.config.epochs} epochs) ends when a trial reaches the target, or after {CAP:g}x "
            f"the longest ASHA + TPE search ({cap / 60:.1f} min): its wall time is up to then.", "",
            markdown_table(["search", "seed", "min to target", "wall min", f"best {space.metric}"], rows), "",
            "Median minutes to the target: " + "; ".join(
                f"{m}: {'not reached' if math.isinf(v) else f'{v:.1f}'}" for m, v in medians.items()) + ".", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default=str(ROOT / "search_spaces" / "default.yaml"))
    parser.add_argument("--seeds", type=int, default=3, help="TPE seeds of the searches compared in (d)")
    parser.add_argument("--quick", action="store_true", help="a smoke run of every part with tiny budgets")
    args = parser.parse_args()
    space = load_space(args.space)
    dataset = load_for(space.config)  # the space's attribute fields, as `raysearch tune` loads it
    if args.quick:
        space = variant(space, space.experiment.name, 0, ["epochs=2", "patience=2", "embedding_dim=16"], num_samples=2,
                        n_startup_trials=None)
    init_ray(None)
    started = time.time()
    lines = [f"# Ray search benchmark: ML-100K ({os.cpu_count()} cores, torch {torch.__version__})", "",
             f"Command: `python benchmarks/search.py {' '.join(sys.argv[1:])}`", ""]
    out = RESULTS / ("search_ml-100k.quick.md" if args.quick else "search_ml-100k.md")

    def write(part: list[str], last: bool = False) -> None:
        """Add ``part`` and rewrite the results file, so a long run that is stopped keeps the parts it finished."""
        lines.extend(part)
        wall = f"Benchmark wall time{'' if last else ' so far'}: {(time.time() - started) / 60:.1f} min."
        out.write_text("\n".join(lines + [wall, ""]))

    with tempfile.TemporaryDirectory() as storage:
        write(ddp_epochs(TrainConfig(epochs=2 if args.quick else 5, patience=5), dataset, storage))
        write(independent_copies(TrainConfig(epochs=2 if args.quick else 5, patience=5), dataset))
        write(overhead(space, dataset, Path(storage), 3 if args.quick else 8, 1 if args.quick else 5))
        write(default_search(space, dataset, Path(storage)))
        write(time_to_target(space, dataset, Path(storage), 1 if args.quick else args.seeds), last=True)
    print(out.read_text())


if __name__ == "__main__":
    main()
