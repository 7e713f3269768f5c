"""Core benchmark: the full model vs contrastive_weight=0 (and popularity / random floors) per protocol.

    python benchmarks/core.py --dataset ml-100k --splits warm,item_cold,user_cold --seeds 3
    python benchmarks/core.py --dataset ml-1m --splits warm --seeds 1 --variants full,popularity \
        --workers 1 --threads 2 --set batch_size=8192 --set epochs=20 --set learning_rate=0.01

Writes ``benchmarks/results/core_<dataset>.csv`` (every run) and ``.md`` (mean ± std per variant and
split, plus seconds per epoch). By default runs go two at a time, one torch thread each (2 cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from raysearch.config import TrainConfig
from raysearch.data.downloads import data_root, dataset_dir
from raysearch.data.movielens import load_dataset
from raysearch.data.protocols import eval_task, make_split
from raysearch.evaluation.scoring import evaluate
from raysearch.train.fit import fit

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("recall@10", "ndcg@10", "mrr@10", "hit@10")
VARIANTS = {"full": ("full model", []),  # short name: (label, config overrides; None: a scoring floor)
            "no_contrastive": ("contrastive_weight=0", ["contrastive_weight=0"]),
            "popularity": ("popularity", None), "random": ("random", None)}


def run(dataset_name: str, split_name: str, seed: int, variant: str, overrides: list[str], threads: int) -> dict:
    """One training run (or a popularity / random floor) in a worker process."""
    torch.set_num_threads(threads)
    dataset = load_dataset(dataset_name, dataset_dir(dataset_name, data_root()))
    split = make_split(dataset, split_name, seed)
    row = {"dataset": dataset_name, "split": split_name, "seed": seed, "variant": variant}
    if variant in ("popularity", "random"):
        counts = torch.bincount(torch.as_tensor(split.train[:, 1]), minlength=dataset.num_items).float()
        noise = torch.rand(dataset.num_users, dataset.num_items, generator=torch.Generator().manual_seed(seed))
        table = counts.expand(dataset.num_users, -1) if variant == "popularity" else noise
        metrics = evaluate(lambda u, i: table[u][:, i], eval_task(split, "test"), dataset.num_items, (10,), 512)
        return {**row, **metrics}
    config = TrainConfig(dataset=dataset_name, split=split_name, seed=seed).with_overrides(overrides)
    started = time.perf_counter()
    result = fit(config, dataset, split)
    seconds = [h["epoch_seconds"] for h in result.history]
    return {**row, **{k: result.test[k] for k in COLUMNS}, "best_epoch": result.best_epoch,
            "epochs_run": len(result.history), "seconds_per_epoch": float(np.mean(seconds)),
            "wall_seconds": time.perf_counter() - started}


def table(frame: pd.DataFrame) -> str:
    """Markdown: mean ± population std (ddof=0) over seeds of each variant on each split."""
    lines = ["| split | variant | " + " | ".join(COLUMNS) + " | s/epoch | epochs (best) |",
             "|---" * (len(COLUMNS) + 4) + "|"]
    for (split, variant), group in frame.groupby(["split", "variant"], sort=False):
        cells = [f"{group[c].mean():.4f} ± {group[c].std(ddof=0):.4f}" for c in COLUMNS]
        speed = f"{group['seconds_per_epoch'].mean():.2f}" if group["seconds_per_epoch"].notna().all() else "-"
        epochs = (f"{group['epochs_run'].mean():.0f} ({group['best_epoch'].mean():.0f})"
                  if group["epochs_run"].notna().all() else "-")
        lines.append(f"| {split} | {variant} | " + " | ".join(cells) + f" | {speed} | {epochs} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--splits", default="warm,item_cold,user_cold")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"any of {', '.join(VARIANTS)}")
    parser.add_argument("--workers", type=int, default=2, help="runs at a time")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config key=value for all runs")
    args = parser.parse_args()
    variants = [VARIANTS[v] for v in args.variants.split(",")]
    jobs = [(args.dataset, split, seed, label, args.overrides + (extra or []), args.threads)
            for split in args.splits.split(",") for seed in range(1, args.seeds + 1) for label, extra in variants]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(run, *zip(*jobs)))
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    name = f"core_{args.dataset}"
    frame.to_csv(RESULTS / f"{name}.csv", index=False)
    wall = time.perf_counter() - started
    text = (f"# Core benchmark: {args.dataset}, test split, {args.seeds} seed(s)\n\n"
            f"Command: `python benchmarks/core.py {' '.join(sys.argv[1:])}` (torch {torch.__version__}, "
            f"{os.cpu_count()} cores, {args.workers} runs at a time, {args.threads} thread(s) each); total wall time "
            f"{wall / 60:.1f} min. Full ranking, training (and for test, validation) items excluded; "
            f"ties count against the positive. Each run early-stops on validation NDCG@10.\n\n{table(frame)}\n")
    (RESULTS / f"{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
