"""The ``raysearch`` command line: arguments in, library calls out. Each command imports what it uses when
it runs, so ``raysearch --help`` loads neither torch, Ray nor LightGBM."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from raysearch.config import DATASETS, PROTOCOLS, TrainConfig
from raysearch.data.synthetic_shape import Shape
from raysearch.errors import RaysearchError
from raysearch.registry import MODELS


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        return args.run(args, argv)
    except RaysearchError as err:
        print(f"raysearch: error: {err}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (``args.run(args, argv)`` runs the chosen one)."""
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--data-dir", help="folder holding ml-100k/, ml-1m/, ..., synthetic/ "
                      "(default: $RAYSEARCH_DATA_DIR, else ~/.cache/raysearch)")
    data.add_argument("--download", action="store_true", help="fetch the GroupLens archive if files are missing")
    storage = argparse.ArgumentParser(add_help=False)
    storage.add_argument("--storage-endpoint", metavar="URL", help="S3-compatible endpoint, e.g. http://minio:9000 "
                         "(default: $AWS_ENDPOINT_URL; credentials always come from the AWS environment)")
    parser = argparse.ArgumentParser(prog="raysearch", description=__doc__.partition(":")[0])
    commands = parser.add_subparsers(required=True, metavar="command")

    train = commands.add_parser("train", parents=[data], help="train one model in-process and score it on a protocol")
    train.add_argument("--config", type=Path, help="YAML of config keys (e.g. a best_config.yaml)")
    train.add_argument("--dataset", choices=DATASETS, help="overrides the config's dataset")
    train.add_argument("--split", choices=PROTOCOLS, help="overrides the config's protocol")
    train.add_argument("--split-file", type=Path, metavar="FILE", help="score on this JSON split (e.g. a run's "
                       "split.json); its protocol and dataset apply unless --split/--dataset are given")
    _set_option(train, "override a config key (repeatable); precedence: defaults < --config < flags < --set")
    train.add_argument("--out", type=Path, help="output folder (default: runs/<dataset>-<split>-<time>); "
                       "must not already hold a run")
    train.add_argument("--metrics-out", type=Path, help="also write final valid/test metrics to this JSON file")
    train.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    train.set_defaults(run=_train)

    split = commands.add_parser("split", parents=[data], help="draw a protocol's split and write it as JSON, "
                                "without training")
    split.add_argument("--dataset", choices=DATASETS, default=TrainConfig.dataset)
    split.add_argument("--protocol", choices=PROTOCOLS, default=TrainConfig.split)
    split.add_argument("--seed", type=int, default=TrainConfig.seed)
    split.add_argument("--cold-user-share", type=float, default=TrainConfig.cold_user_share,
                       help="mixed protocol: share of the users held out as cold users")
    split.add_argument("--out", type=Path, required=True, help="new JSON file")
    split.add_argument("--explicit", action="store_true", help="list the train/valid/test interactions even where "
                       "the cold ids alone define the split (the warm protocol always lists them)")
    split.set_defaults(run=_split)

    synth = commands.add_parser("synthesize", help="write a seeded MovieLens-shaped set (ML-25M's files) for "
                                "--dataset synthetic")
    synth.add_argument("--data-dir", help="its parent folder (default: $RAYSEARCH_DATA_DIR, else ~/.cache/raysearch)")
    synth.add_argument("--out", type=Path, help="folder to write (default: <data dir>/synthetic; replaced if it exists)")
    for field in dataclasses.fields(Shape):
        synth.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default,
                           help=f"default {field.default}")
    synth.set_defaults(run=_synthesize)

    tune = commands.add_parser("tune", parents=[data, storage],
                               help="search hyperparameters with Ray Tune (Optuna TPE + ASHA)")
    tune.add_argument("--space", type=Path, help="search-space YAML (see search_spaces/)")
    tune.add_argument("--resume", metavar="EXPERIMENT", help="continue an interrupted experiment (folder or s3://... URI)")
    tune.add_argument("--storage", default=os.environ.get("RAYSEARCH_STORAGE", "runs/tune"),
                      help="folder (local/NFS) or bucket URI (s3://bucket/prefix, gs://...) every node can reach, "
                      "for all results (default: $RAYSEARCH_STORAGE, else runs/tune)")
    tune.add_argument("--name", help="experiment name (default: the space's experiment.name)")
    tune.add_argument("--workers-per-trial", type=int, help="Ray Train DDP workers per trial")
    tune.add_argument("--use-gpu", action="store_true", help="one GPU per worker, NCCL backend")
    tune.add_argument("--address", help="Ray cluster to join: auto | ray://host:10001 (default: embedded local Ray)")
    tune.add_argument("--num-cpus", type=int, help="logical CPUs of the embedded local Ray (default: all cores)")
    _set_option(tune, "fix a config key (repeatable); precedence: defaults < space YAML < --set")
    tune.set_defaults(run=_tune)

    export = commands.add_parser("export", parents=[storage],
                                 help="export an experiment's best checkpoint as a standalone model")
    export.add_argument("experiment", help="experiment written by `raysearch tune` (folder or s3://... URI)")
    export.add_argument("--out", required=True, help="new folder (or bucket URI) for the model")
    export.add_argument("--trial", help="export this trial's best checkpoint (a trial id of trials.csv, e.g. a "
                        "point of pareto.csv) instead of the experiment's best")
    export.set_defaults(run=_export)

    recommend = commands.add_parser("recommend", parents=[storage], help="top-k items from an exported model")
    recommend.add_argument("model", help="folder (or bucket URI) written by `raysearch export`")
    who = recommend.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", type=int, help="original id of a user of the training data")
    who.add_argument("--user-attrs", help="a new user, e.g. gender=F,age=25,occupation=writer,zip=55455")
    recommend.add_argument("-k", type=int, default=10, help="number of items")
    recommend.set_defaults(run=_recommend)

    compare = commands.add_parser("compare", parents=[data], help="every model x split x seed on the same splits, "
                                  "ablations, learning-rate sensitivity and fusion weights, as a report")
    compare.add_argument("--dataset", choices=DATASETS, default=TrainConfig.dataset)
    compare.add_argument("--splits", default=",".join(PROTOCOLS), help="comma-separated protocols")
    compare.add_argument("--models", default="all", help=f"'all' or comma-separated: {', '.join(MODELS)}")
    compare.add_argument("--seeds", default="3", help="runs per model and split (seeds 1..N), then optional "
                         "SPLIT=N items for splits that run more or fewer, e.g. 3,item_cold=5,user_cold=5")
    compare.add_argument("--config-from", action="append", default=[], type=Path, metavar="EXPERIMENT",
                         help="use the best_config.yaml of a search experiment for the model it tuned (repeatable)")
    compare.add_argument("--no-ablations", action="store_true", help="skip the full model's ablations")
    compare.add_argument("--lr-split", default="warm", help="protocol of the learning-rate sweep ('none' skips it)")
    _set_option(compare, "config key for every run (repeatable; only for models that have it and do not fix it), "
                "e.g. epochs=30; MODEL.KEY=VALUE sets it for one model only, e.g. autorec.epochs=100")
    compare.add_argument("--split-file", type=Path, metavar="FILE", help="every run on this JSON split (its "
                         "protocol replaces --splits; seeds then vary only the training)")
    compare.add_argument("--out", type=Path, required=True, help="report folder; runs already in its "
                         "comparison.csv are kept, not rerun")
    compare.add_argument("--report-only", action="store_true", help="write the report from the runs already in "
                         "comparison.csv; run nothing")
    compare.add_argument("--workers", type=int, default=os.cpu_count(), help="runs at a time (local processes)")
    compare.add_argument("--threads", type=int, default=1, help="torch threads per run")
    compare.add_argument("--address", help="run on a Ray cluster (auto | ray://host:10001) instead of local processes")
    compare.set_defaults(run=_compare)
    return parser


def _set_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    import torch

    from raysearch.data.movielens import load_for
    from raysearch.data.split_files import split_for, split_summary
    from raysearch.markdown import metrics_table
    from raysearch.train.run_folder import new_run_folder, run_config, train_to_folder

    flags = [f"{k}={v}" for k, v in (("dataset", args.dataset), ("split", args.split)) if v]
    config = run_config(args.config, args.split_file, flags + args.overrides)
    out = new_run_folder(args.out, config)
    torch.set_num_threads(max(1, args.threads))
    dataset = load_for(config, args.data_dir, args.download)
    split = split_for(config, dataset)
    print(f"{config.model} on {config.dataset} {config.split}: {dataset.num_users} users, {dataset.num_items} items; "
          f"{split_summary(split)}")
    result = train_to_folder(config, dataset, split, out, args.metrics_out)
    print(f"\nbest epoch {result.best_epoch}\n" + metrics_table({"valid": result.valid, "test": result.test}, config.topk))
    sampled = {k: round(v, 4) for k, v in result.test.items() if k.startswith("sampled_")}
    print(f"test, sampled protocol (1 positive + 99 negatives): {sampled}\noutputs: {out}")
    return 0


def _split(args: argparse.Namespace, argv: list[str]) -> int:
    from raysearch.data.movielens import load_for
    from raysearch.data.protocols import make_split
    from raysearch.data.split_files import split_summary, write_split

    if args.out.exists():
        raise RaysearchError(f"{args.out}: file exists; choose another --out")
    config = TrainConfig.from_dict({"dataset": args.dataset, "split": args.protocol, "seed": args.seed,
                                    "cold_user_share": args.cold_user_share}, source="split")
    dataset = load_for(config, args.data_dir, args.download)
    split = make_split(dataset, config.split, config.seed, config.cold_user_share)
    write_split(split, dataset, args.out, explicit=args.explicit)
    print(f"wrote {args.out}: {config.dataset} {config.split} split, seed {config.seed}: {split_summary(split)}")
    return 0


def _synthesize(args: argparse.Namespace, argv: list[str]) -> int:
    from raysearch.data import synthetic
    from raysearch.data.downloads import data_root

    shape = Shape(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Shape)})
    out = args.out or data_root(args.data_dir) / "synthetic"
    movies, ratings = synthetic.write(shape, out)
    print(f"wrote {out}: {movies} movies, {ratings} ratings of {shape.users} users (dataset synthetic; point "
          f"--data-dir at {out.parent} if that is not your data folder)")
    return 0


def _tune(args: argparse.Namespace, argv: list[str]) -> int:
    from raysearch.search import tuning  # Ray is imported only by the commands that use it
    from raysearch.search.space import load_space, saved_space
    from raysearch.search.storage import resolve

    if args.resume:
        if args.space or args.name:
            raise RaysearchError("--resume takes the experiment folder only; its saved space is reused")
        experiment = resolve(args.resume, args.storage_endpoint)
        space, storage, name = saved_space(experiment), experiment.parent, experiment.name
    elif args.space:
        space = load_space(args.space).with_overrides(args.overrides)
        storage, name = resolve(args.storage, args.storage_endpoint), args.name or space.experiment.name
    else:
        raise RaysearchError("give --space FILE for a new search or --resume EXPERIMENT to continue one")
    space = space.with_resources(workers_per_trial=args.workers_per_trial, use_gpu=args.use_gpu or None)
    experiment = tuning.run_search(space, storage, name, bool(args.resume), args.data_dir, args.download,
                                   args.address, args.num_cpus)
    print(f"\nexperiment: {experiment}\nbest config: {experiment / 'best_config.yaml'}\n"
          f"best checkpoint: {experiment / 'best_checkpoint'}\ntrials: {experiment / 'trials.csv'}\n"
          f"compare trials: tensorboard --logdir {experiment}")
    return 0


def _export(args: argparse.Namespace, argv: list[str]) -> int:
    from raysearch.export import export_model

    out = export_model(args.experiment, args.out, args.storage_endpoint, args.trial)
    print(f"exported {out / 'model.pt'} (load with raysearch.load_model({str(out)!r}))")
    return 0


def _recommend(args: argparse.Namespace, argv: list[str]) -> int:
    from raysearch.export import load_model, parse_attributes
    from raysearch.markdown import markdown_table

    recommender = load_model(args.model, args.storage_endpoint)
    if args.user is not None:
        items = recommender.recommend(args.user, args.k)
    else:
        items = recommender.recommend_for_attributes(parse_attributes(args.user_attrs), args.k)
    print(markdown_table(["rank", "item_id", "title", "score"],
                         [[r, i.item_id, i.title, i.score] for r, i in enumerate(items, 1)]))
    return 0


def _compare(args: argparse.Namespace, argv: list[str]) -> int:
    from raysearch.compare.runner import run_comparison

    report = run_comparison(
        args.out, dataset=args.dataset, splits=args.splits.split(","),
        models=[] if args.models == "all" else args.models.split(","), seeds=args.seeds,
        config_from=args.config_from, ablations=not args.no_ablations,
        lr_split=None if args.lr_split == "none" else args.lr_split, overrides=args.overrides,
        split_file=args.split_file, data_dir=args.data_dir, download=args.download, workers=args.workers,
        threads=args.threads, address=args.address, run=not args.report_only, command=" ".join(argv[1:]))
    print(f"report: {report}")
    return 0
