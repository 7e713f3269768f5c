"""The ``raysearch`` command line."""

from __future__ import annotations

import argparse
import dataclasses
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
from raysearch.export import export_model, load_model
from raysearch.reporting import LocalReporter, markdown_table, metrics_table
from raysearch.search_space import SPACE_FILE, load_space
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

    tune = commands.add_parser("tune", help="search hyperparameters with Ray Tune (Optuna TPE + ASHA)")
    tune.add_argument("--space", type=Path, help="search-space YAML (see search_spaces/)")
    tune.add_argument("--resume", type=Path, metavar="EXPERIMENT", help="continue an interrupted experiment folder")
    tune.add_argument("--storage", default="runs/tune", help="local/NFS folder for all results (default: runs/tune)")
    tune.add_argument("--name", help="experiment name (default: the space's experiment.name)")
    tune.add_argument("--workers-per-trial", type=int, help="Ray Train DDP workers per trial")
    tune.add_argument("--use-gpu", action="store_true", help="one GPU per worker, NCCL backend")
    tune.add_argument("--address", help="Ray cluster to join: auto | ray://host:10001 (default: embedded local Ray)")
    tune.add_argument("--num-cpus", type=int, help="logical CPUs of the embedded local Ray (default: all cores)")
    tune.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="fix a config key (repeatable); precedence: defaults < space YAML < --set")
    tune.add_argument("--data-dir", help="folder holding ml-100k/ and ml-1m/")
    tune.add_argument("--download", action="store_true", help="fetch the GroupLens archive if files are missing")
    tune.set_defaults(run=_tune)

    export = commands.add_parser("export", help="export an experiment's best checkpoint as a standalone model")
    export.add_argument("experiment", type=Path, help="experiment folder written by `raysearch tune`")
    export.add_argument("--out", type=Path, required=True, help="new folder for the model")
    export.set_defaults(run=_export)

    recommend = commands.add_parser("recommend", help="top-k items from an exported model")
    recommend.add_argument("model", type=Path, help="folder written by `raysearch export`")
    who = recommend.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", type=int, help="original id of a user of the training data")
    who.add_argument("--user-attrs", help="a new user, e.g. gender=F,age=25,occupation=writer,zip=55455")
    recommend.add_argument("-k", type=int, default=10, help="number of items")
    recommend.set_defaults(run=_recommend)
    return parser


def _load_data(name: str, args: argparse.Namespace, config: TrainConfig):
    folder = dataset_dir(name, data_root(args.data_dir), download=args.download)
    return load_dataset(name, folder, config.rating_threshold, config.text_buckets)


def _tune(args: argparse.Namespace) -> int:
    from raysearch import tuning  # Ray is imported only by the commands that use it

    if args.resume:
        if args.space or args.name:
            raise RaysearchError("--resume takes the experiment folder only; its saved space is reused")
        if not (args.resume / SPACE_FILE).is_file():
            raise RaysearchError(f"{args.resume}: not a raysearch experiment folder (no {SPACE_FILE}) to resume")
        space = load_space(args.resume / SPACE_FILE)
        storage, name = args.resume.parent, args.resume.name
    elif args.space:
        space = load_space(args.space).with_overrides(args.overrides)
        storage, name = Path(args.storage), args.name or space.experiment.name
    else:
        raise RaysearchError("give --space FILE for a new search or --resume EXPERIMENT to continue one")
    resources = {k: v for k, v in (("workers_per_trial", args.workers_per_trial), ("use_gpu", args.use_gpu or None)) if v}
    space = dataclasses.replace(space, resources=dataclasses.replace(space.resources, **resources))
    dataset = _load_data(space.config.dataset, args, space.config)
    tuning.init_ray(args.address, args.num_cpus)
    experiment = tuning.search(space, dataset, storage, name, resume=bool(args.resume))
    print(f"\nexperiment: {experiment}\nbest config: {experiment / 'best_config.yaml'}\n"
          f"best checkpoint: {experiment / 'best_checkpoint'}\ntrials: {experiment / 'trials.csv'}\n"
          f"compare trials: tensorboard --logdir {experiment}")
    return 0


def _export(args: argparse.Namespace) -> int:
    out = export_model(args.experiment, args.out)
    print(f"exported {out / 'model.pt'} (load with raysearch.load_model({str(out)!r}))")
    return 0


def _recommend(args: argparse.Namespace) -> int:
    recommender = load_model(args.model)
    if args.user is not None:
        items = recommender.recommend(args.user, args.k)
    else:
        pairs = [p.partition("=") for p in args.user_attrs.split(",") if p.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise RaysearchError(f"--user-attrs: expected key=value pairs separated by commas, got {args.user_attrs!r}")
        items = recommender.recommend_for_attributes({k.strip(): v for k, _, v in pairs}, args.k)
    print(markdown_table(["rank", "item_id", "title", "score"],
                         [[r, i.item_id, i.title, i.score] for r, i in enumerate(items, 1)]))
    return 0


def _train(args: argparse.Namespace) -> int:
    config = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    flags = [f"{k}={v}" for k, v in (("dataset", args.dataset), ("split", args.split)) if v]
    config = config.with_overrides(flags + args.overrides)
    out = args.out or Path("runs") / f"{config.dataset}-{config.split}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and any(out.iterdir()):
        raise RaysearchError(f"{out}: output folder already holds files; choose another --out")
    torch.set_num_threads(max(1, args.threads))
    dataset = _load_data(config.dataset, args, config)
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
