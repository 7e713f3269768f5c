"""The ``raysearch`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from raysearch.config import DATASETS, PROTOCOLS, TrainConfig
from raysearch.data import load_dataset
from raysearch.datafiles import dataset_dir, data_root
from raysearch.errors import RaysearchError
from raysearch.reporting import LocalReporter, metrics_table
from raysearch.splits import make_split, save_split
from raysearch.training import fit


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except RaysearchError as err:
        print(f"raysearch: error: {err}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raysearch", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="command")
    train = commands.add_parser("train", help="train one model in-process and score it on a protocol")
    train.add_argument("--config", type=Path, help="YAML of config keys (e.g. a best_config.yaml)")
    train.add_argument("--dataset", choices=DATASETS, help="overrides the config's dataset")
    train.add_argument("--split", choices=PROTOCOLS, help="overrides the config's protocol")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key (repeatable); precedence: defaults < --config < flags < --set")
    train.add_argument("--data-dir", help="folder holding ml-100k/ and ml-1m/ "
                       "(default: $RAYSEARCH_DATA_DIR, else ~/.cache/raysearch)")
    train.add_argument("--download", action="store_true", help="fetch the GroupLens archive if files are missing")
    train.add_argument("--out", type=Path, help="output folder (default: runs/<dataset>-<split>-<time>); "
                       "must not already hold a run")
    train.add_argument("--metrics-out", type=Path, help="also write final valid/test metrics to this JSON file")
    train.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    train.set_defaults(run=_train)
    return parser


def _train(args: argparse.Namespace) -> int:
    config = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    flags = [f"{k}={v}" for k, v in (("dataset", args.dataset), ("split", args.split)) if v]
    config = config.with_overrides(flags + args.overrides)
    out = args.out or Path("runs") / f"{config.dataset}-{config.split}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and any(out.iterdir()):
        raise RaysearchError(f"{out}: output folder already holds files; choose another --out")
    torch.set_num_threads(max(1, args.threads))
    folder = dataset_dir(config.dataset, data_root(args.data_dir), download=args.download)
    dataset = load_dataset(config.dataset, folder, config.rating_threshold, config.text_buckets)
    split = make_split(dataset, config.split, config.seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(config.to_yaml())
    save_split(split, dataset, out / "split.npz")
    print(f"{config.dataset} {config.split}: {dataset.num_users} users, {dataset.num_items} items; "
          f"train {len(split.train)}, valid {len(split.valid)}, test {len(split.test)} interactions")
    reporter = LocalReporter(out, config.metric, config.epochs)
    try:
        result = fit(config, dataset, split, reporter)
    finally:
        reporter.close()
    pd.DataFrame(result.history).to_csv(out / "history.csv", index=False)
    final = {"best_epoch": result.best_epoch, "valid": result.valid, "test": result.test}
    (out / "metrics.json").write_text(json.dumps(final, indent=2))
    if args.metrics_out:
        args.metrics_out.parent.mkdir(parents=True, exist_ok=True)
        args.metrics_out.write_text(json.dumps(final, indent=2))
    print(f"\nbest epoch {result.best_epoch}\n" + metrics_table({"valid": result.valid, "test": result.test}, config.topk))
    sampled = {k: round(v, 4) for k, v in result.test.items() if k.startswith("sampled_")}
    print(f"test, sampled protocol (1 positive + 99 negatives): {sampled}\noutputs: {out}")
    return 0
