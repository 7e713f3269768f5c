"""Scale benchmark: training time per epoch against training pairs, full vs neighbour-sampled propagation.

    python benchmarks/scale.py [--sizes ml-100k,ml-1m,synthetic-5m,synthetic-25m] [--steps 20] [--threads 2] \
        [--ddp-size synthetic-5m]

Each (set, propagation) runs in a fresh process: load the set, draw its warm split (seed 0), build the default
FusionGCN with ``batch_size`` 8192, run 2 warm-up steps, then time ``--steps`` optimizer steps of the real
training epoch on random training pairs; a sampled run's history refresh (once per epoch) is timed apart. Seconds
per epoch = steps per epoch x seconds per step + one refresh (a whole epoch of full propagation on 25M pairs would
take hours here). Peak memory is the process's maximum
resident set (loading included), i.e. one worker's. The synthetic sets are written by `raysearch synthesize`'s
generator into ``--work-dir`` once and reused. A second part times data-parallel workers at equal steps with
sampled propagation on ``--ddp-size``. Writes ``benchmarks/results/scale.md``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from raysearch.config import TrainConfig
from raysearch.data import synthetic
from raysearch.data.downloads import data_root, dataset_dir
from raysearch.data.movielens import load_dataset
from raysearch.data.protocols import make_split
from raysearch.data.synthetic_shape import Shape
from raysearch.markdown import markdown_table
from raysearch.train.fusion_gcn import build_model, make_optimizer, train_epoch
from raysearch.train.inputs import History, ModelInputs, NegativeSampler, training_items
from raysearch.train.ranks import Ranks

RESULTS = Path(__file__).resolve().parent / "results"
SYNTHETIC = {"synthetic-5m": Shape(), "synthetic-25m": Shape(users=162_000, items=59_000, ratings=25_000_000)}
BATCH = 8192
MODES = {"full": {"user_neighbours": 0},  # the graph's cost alone (and sampled propagation has no attribute neighbours)
         "sampled": {"propagation": "sampled", "negative_pool": 1024, "sparse_ids": True, "user_neighbours": 0}}


def folder(size: str, work_dir: Path) -> tuple[str, Path]:
    """(dataset name, its folder): the real sets from the data root, the synthetic ones written once."""
    if size not in SYNTHETIC:
        return size, dataset_dir(size, data_root())
    path = work_dir / size / "synthetic"
    if not (path / "ratings.csv").is_file():
        synthetic.write(SYNTHETIC[size], path)
    return "synthetic", path


def timed_steps(size: str, work_dir: Path, mode: str, steps: int, ranks: Ranks = Ranks()) -> dict:
    """Load ``size``, draw its warm split (seed 0), build the default model in ``mode``, run 2 warm-up steps and
    time ``steps`` optimizer steps of ``train_epoch`` on the same random pairs for every rank (each takes its
    shard); with several ``ranks`` (a process group is up) the model is DDP-wrapped, as Ray Train wraps it."""
    name, path = folder(size, work_dir)
    started = time.perf_counter()
    dataset = load_dataset(name, path)
    loaded = time.perf_counter() - started
    config = TrainConfig.from_dict({"dataset": name, "batch_size": BATCH, **MODES[mode]})
    split = make_split(dataset, "warm", 0)
    torch.manual_seed(0)
    model = build_model(config, dataset)
    trained = torch.nn.parallel.DistributedDataParallel(model) if ranks.size > 1 else model
    optimizer = make_optimizer(model, config)
    inputs = ModelInputs.build(dataset, split.train)
    sampler = NegativeSampler(split.train, training_items(dataset, split), dataset.num_items)
    generator = torch.Generator().manual_seed(ranks.seed(0))
    train = torch.as_tensor(split.train)
    pairs = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[: BATCH * (steps + 2)]]
    line_up = torch.distributed.barrier if ranks.size > 1 else lambda: None
    train_epoch(trained, optimizer, inputs, pairs[: 2 * BATCH], sampler, config, generator, ranks)  # warm-up
    started = time.perf_counter()
    if config.settings.propagation == "sampled":
        History(model, inputs)  # what train_epoch pays once at its start
    refresh = time.perf_counter() - started
    line_up()
    started = time.perf_counter()
    done = train_epoch(trained, optimizer, inputs, pairs[2 * BATCH:], sampler, config, generator, ranks)
    line_up()
    step = (time.perf_counter() - started - refresh) / done.steps  # train_epoch refreshed the history once
    return {"set": size, "propagation": mode, "users": dataset.num_users, "items": dataset.num_items,
            "pairs": len(split.train), "load_s": loaded, "steps": done.steps, "step_s": step, "refresh_s": refresh,
            "epoch_s": step * math.ceil(len(split.train) / BATCH) + refresh,
            "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def measure(size: str, work_dir: Path, mode: str, steps: int, threads: int) -> dict:
    """One (set, mode) in this (fresh) process."""
    torch.set_num_threads(threads)
    return timed_steps(size, work_dir, mode, steps)


def data_parallel(rank: int, workers: int, threads: int, size: str, work_dir: Path, steps: int, port: int,
                  results: dict) -> None:
    """One rank of a torch DDP run over gloo, as Ray Train sets one up, in sampled mode; rank 0 records."""
    torch.set_num_threads(threads)
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                         world_size=workers)
    row = timed_steps(size, work_dir, "sampled", steps, Ranks(rank, workers))
    if rank == 0:
        results[workers, threads] = (row["step_s"], row["steps"], row["peak_gb"])
    torch.distributed.destroy_process_group()


def data_parallel_report(size: str, work_dir: Path, steps: int) -> list[str]:
    """Seconds per step of 1 worker x 1 thread, 1 worker x all cores, 2 workers x half of them (sampled)."""
    cores = os.cpu_count()
    with multiprocessing.get_context("spawn").Manager() as manager:
        results = manager.dict()
        for port, (workers, threads) in enumerate(((1, 1), (1, cores), (2, cores // 2)), start=29611):
            torch.multiprocessing.spawn(data_parallel, (workers, threads, size, work_dir, steps, port, results),
                                        nprocs=workers)
        results = dict(results)
    rows = [[w, t, n, f"{s:.3f}", f"{results[1, 1][0] / s:.2f}", f"{gb:.2f}"]
            for (w, t), (s, n, gb) in results.items()]
    two, one, all_cores = results[2, cores // 2][0], results[1, 1][0], results[1, cores][0]
    return ["", f"## Data-parallel workers on {size}, sampled propagation, at equal optimizer steps", "",
            f"torch DDP over gloo on this machine ({cores} cores), each rank taking batch {BATCH} / workers of its "
            f"own shard per step (the global batch and the steps stay the same); {steps} steps after 2 warm-up "
            "steps. Ray Train runs this same loop in its workers; its worker start-up is measured in "
            "`search_ml-100k.md` (b).", "",
            markdown_table(["workers", "threads each", "steps", "s/step", "speed vs 1 x 1", "peak GB (rank 0)"], rows),
            "", f"Two workers: **{one / two:.2f}x** one worker of 1 thread, **{all_cores / two:.2f}x** one worker of "
            f"{cores} threads."]


def report(rows: list[dict], args: argparse.Namespace) -> str:
    """The results table and, per propagation, how far from linear its epoch time grows."""
    base = {r["propagation"]: r["epoch_s"] / r["pairs"] for r in rows if r["set"] == rows[0]["set"]}
    table = [[r["set"], f"{r['pairs']:,}", f"{r['users']:,}", f"{r['items']:,}", r["propagation"],
              f"{r['step_s']:.3f}", f"{r['refresh_s']:.2f}", f"{r['epoch_s']:.1f}",
              f"{r['epoch_s'] / r['pairs'] * 1e6:.1f}",
              f"{r['epoch_s'] / r['pairs'] / base[r['propagation']]:.2f}", f"{r['load_s']:.1f}", f"{r['peak_gb']:.2f}"]
             for r in rows]
    lines = [f"# Scale: epoch time against training pairs ({os.cpu_count()} cores, {args.threads} torch threads, "
             f"torch {torch.__version__})", "", f"Command: `python benchmarks/scale.py {' '.join(sys.argv[1:])}`", "",
             f"Default FusionGCN (3 layers, 32 negatives per pair), batch {BATCH}, warm split seed 0; full: the whole "
             "graph propagated at every step; sampled: `propagation=sampled` (fanout 10: a step computes only its "
             "users and items, from their sampled neighbours' layer inputs kept in a history that an exact full "
             "propagation refreshes at each epoch's start; the sampled rows carry only the change since, the "
             "refresh's exact rows the rest: control variates) with `negative_pool=1024` (each step's negatives drawn "
             "from 1,024 shared items) and `sparse_ids=true` (SparseAdam over the ID rows a step touched). "
             f"Seconds per step over {args.steps} steps after 2 warm-up steps, the history refresh timed apart; "
             "seconds per epoch = steps per epoch (pairs / batch, rounded up) x seconds per step + one refresh. "
             "ml-100k and ml-1m are the real sets; synthetic-5m and synthetic-25m come from "
             "`raysearch synthesize` (30k users x 10k items, and ML-25M's 162k users x 59k items). Peak memory: "
             "the worker process's maximum resident set, loading included.", "",
             markdown_table(["set", "training pairs", "users", "items", "propagation", "s/step", "refresh s",
                             "s/epoch", "s per 1M pairs", "x linear", "load s", "peak GB"], table), "",
             f"`x linear`: seconds per training pair relative to {rows[0]['set']}'s with the same propagation "
             "(1.00 = linear; the goal for sampled is at most 1.5 over the whole range)."]
    for propagation in sorted(base):
        worst = max((r for r in rows if r["propagation"] == propagation), key=lambda r: r["epoch_s"] / r["pairs"])
        lines.append(f"- {propagation}: at most **{worst['epoch_s'] / worst['pairs'] / base[propagation]:.2f}x** "
                     f"linear (at {worst['set']}).")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="ml-100k,ml-1m,synthetic-5m,synthetic-25m")
    parser.add_argument("--propagations", default="full,sampled")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/raysearch-scale"), help="synthetic sets")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.md")
    parser.add_argument("--ddp-size", default="synthetic-5m", help="set of the data-parallel part ('none' skips it)")
    args = parser.parse_args()
    rows = []
    for size in args.sizes.split(","):
        for propagation in args.propagations.split(","):
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                rows.append(pool.submit(measure, size, args.work_dir, propagation, args.steps, args.threads).result())
            print(rows[-1], flush=True)
            args.out.write_text(report(rows, args))
    if args.ddp_size != "none":
        args.out.write_text(report(rows, args) + "\n".join(data_parallel_report(args.ddp_size, args.work_dir,
                                                                                  args.steps)) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
