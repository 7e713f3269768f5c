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

from raysearch.comparison import MODEL_DEFAULTS
from raysearch.config import DATASETS, MODEL_PINS, PROTOCOLS, TrainConfig
from raysearch.data import load_dataset
from raysearch.datafiles import dataset_dir, data_root
from raysearch.errors import ConfigError, RaysearchError
from raysearch.export import export_model, load_model
from raysearch.reporting import LocalReporter, markdown_table, metrics_table
from raysearch.search_space import SPACE_FILE, load_space
from raysearch.split_files import COLD_KEYS, SPLIT_FILE, split_file_settings, split_for, write_split
from raysearch.splits import make_split
from raysearch.storage import local_copy, resolve
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
    train.add_argument("--split-file", type=Path, metavar="FILE", help="score on this JSON split (e.g. a run's "
                       "split.json); its protocol and dataset apply unless --split/--dataset are given")
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

    split = commands.add_parser("split", help="draw a protocol's split and write it as JSON, without training")
    split.add_argument("--dataset", choices=DATASETS, default=TrainConfig.dataset)
    split.add_argument("--protocol", choices=PROTOCOLS, default=TrainConfig.split)
    split.add_argument("--seed", type=int, default=TrainConfig.seed)
    split.add_argument("--out", type=Path, required=True, help="new JSON file")
    split.add_argument("--explicit", action="store_true", help="list the train/valid/test interactions even where "
                       "the cold ids alone define the split (the warm protocol always lists them)")
    split.add_argument("--data-dir", help="folder holding ml-100k/ and ml-1m/")
    split.add_argument("--download", action="store_true", help="fetch the GroupLens archive if files are missing")
    split.set_defaults(run=_split)

    tune = commands.add_parser("tune", help="search hyperparameters with Ray Tune (Optuna TPE + ASHA)")
    tune.add_argument("--space", type=Path, help="search-space YAML (see search_spaces/)")
    tune.add_argument("--resume", metavar="EXPERIMENT", help="continue an interrupted experiment (folder or s3://... URI)")
    tune.add_argument("--storage", default=os.environ.get("RAYSEARCH_STORAGE", "runs/tune"),
                      help="folder (local/NFS) or bucket URI (s3://bucket/prefix, gs://...) every node can reach, "
                      "for all results (default: $RAYSEARCH_STORAGE, else runs/tune)")
    _endpoint_option(tune)
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
    export.add_argument("experiment", help="experiment written by `raysearch tune` (folder or s3://... URI)")
    export.add_argument("--out", required=True, help="new folder (or bucket URI) for the model")
    _endpoint_option(export)
    export.set_defaults(run=_export)

    recommend = commands.add_parser("recommend", help="top-k items from an exported model")
    recommend.add_argument("model", help="folder (or bucket URI) written by `raysearch export`")
    _endpoint_option(recommend)
    who = recommend.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", type=int, help="original id of a user of the training data")
    who.add_argument("--user-attrs", help="a new user, e.g. gender=F,age=25,occupation=writer,zip=55455")
    recommend.add_argument("-k", type=int, default=10, help="number of items")
    recommend.set_defaults(run=_recommend)

    compare = commands.add_parser("compare", help="every model x split x seed on the same splits, ablations, "
                                  "learning-rate sensitivity and fusion weights, as a report")
    compare.add_argument("--dataset", choices=DATASETS, default=TrainConfig.dataset)
    compare.add_argument("--splits", default=",".join(PROTOCOLS), help="comma-separated protocols")
    compare.add_argument("--models", default="all", help=f"'all' or comma-separated: {', '.join(MODEL_DEFAULTS)}")
    compare.add_argument("--seeds", type=int, default=3, help="runs per model and split (seeds 1..N)")
    compare.add_argument("--config-from", action="append", default=[], type=Path, metavar="EXPERIMENT",
                         help="use the best_config.yaml of a search experiment for the model it tuned (repeatable)")
    compare.add_argument("--no-ablations", action="store_true", help="skip the full model's ablations")
    compare.add_argument("--lr-split", default="warm", help="protocol of the learning-rate sweep ('none' skips it)")
    compare.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="config key for every run (repeatable; not for models that fix it), e.g. epochs=30; "
                         "MODEL.KEY=VALUE sets it for one model only, e.g. autorec.epochs=100")
    compare.add_argument("--split-file", type=Path, metavar="FILE", help="every run on this JSON split (its "
                         "protocol replaces --splits; seeds then vary only the training)")
    compare.add_argument("--out", type=Path, required=True, help="report folder; runs already in its "
                         "comparison.csv are kept, not rerun")
    compare.add_argument("--report-only", action="store_true", help="write the report from the runs already in "
                         "comparison.csv; run nothing")
    compare.add_argument("--workers", type=int, default=os.cpu_count(), help="runs at a time (local processes)")
    compare.add_argument("--threads", type=int, default=1, help="torch threads per run")
    compare.add_argument("--address", help="run on a Ray cluster (auto | ray://host:10001) instead of local processes")
    compare.add_argument("--data-dir", help="folder holding ml-100k/ and ml-1m/")
    compare.set_defaults(run=_compare)
    return parser


def _endpoint_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage-endpoint", metavar="URL", help="S3-compatible endpoint, e.g. http://minio:9000 "
                        "(default: $AWS_ENDPOINT_URL; credentials always come from the AWS environment)")


def _load_data(name: str, args: argparse.Namespace, config: TrainConfig):
    folder = dataset_dir(name, data_root(args.data_dir), download=args.download)
    return load_dataset(name, folder, config.rating_threshold, config.text_buckets)


def _tune(args: argparse.Namespace) -> int:
    from raysearch import tuning  # Ray is imported only by the commands that use it

    if args.resume:
        if args.space or args.name:
            raise RaysearchError("--resume takes the experiment folder only; its saved space is reused")
        experiment = resolve(args.resume, args.storage_endpoint)
        if not (experiment / SPACE_FILE).is_file():
            raise RaysearchError(f"{experiment}: not a raysearch experiment folder (no {SPACE_FILE}) to resume")
        with local_copy(experiment / SPACE_FILE) as path:
            space = load_space(path)
        storage, name = experiment.parent, experiment.name
    elif args.space:
        space = load_space(args.space).with_overrides(args.overrides)
        storage, name = resolve(args.storage, args.storage_endpoint), args.name or space.experiment.name
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
    out = export_model(args.experiment, args.out, args.storage_endpoint)
    print(f"exported {out / 'model.pt'} (load with raysearch.load_model({str(out)!r}))")
    return 0


def _recommend(args: argparse.Namespace) -> int:
    recommender = load_model(args.model, args.storage_endpoint)
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
    if args.split_file:
        config = TrainConfig.from_dict({**config.to_dict(), **split_file_settings(args.split_file)},
                                       source=f"--split-file {args.split_file}")
    flags = [f"{k}={v}" for k, v in (("dataset", args.dataset), ("split", args.split)) if v]
    config = config.with_overrides(flags + args.overrides)
    out = args.out or Path("runs") / f"{config.dataset}-{config.split}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RaysearchError(f"{out}: output folder already holds files (or is a file); choose another --out")
    torch.set_num_threads(max(1, args.threads))
    dataset = _load_data(config.dataset, args, config)
    split = split_for(config, dataset)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(config.to_yaml())
    write_split(split, dataset, out / SPLIT_FILE)
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


def _split(args: argparse.Namespace) -> int:
    if args.out.exists():
        raise RaysearchError(f"{args.out}: file exists; choose another --out")
    config = TrainConfig(dataset=args.dataset, split=args.protocol, seed=args.seed)
    dataset = _load_data(config.dataset, args, config)
    split = make_split(dataset, config.split, config.seed)
    write_split(split, dataset, args.out, explicit=args.explicit)
    key = COLD_KEYS.get(split.protocol)
    cold = f"; {key}: " + ", ".join(f"{p} {len(v)}" for p, v in getattr(split, key).items()) if key else ""
    print(f"wrote {args.out}: {config.dataset} {config.split} split, seed {config.seed}: "
          + ", ".join(f"{p} {len(split.part(p))}" for p in ("train", "valid", "test")) + f" interactions{cold}")
    return 0


def model_overrides(model: str, overrides: list[str]) -> list[str]:
    """The ``--set`` items for ``model``: plain ``KEY=VALUE`` items (except keys the model fixes) and
    ``MODEL.KEY=VALUE`` items naming it, without the prefix."""
    chosen = []
    for item in overrides:
        key, _, value = item.partition("=")
        scope, dot, name = key.strip().rpartition(".")
        if dot and scope not in MODEL_DEFAULTS:
            raise ConfigError(f"--set: value {item!r}: unknown model {scope!r} before the dot; expected one of "
                              f"{', '.join(MODEL_DEFAULTS)}")
        if dot and name in MODEL_PINS.get(scope, {}):
            raise ConfigError(f"--set: value {item!r}: {scope} fixes {name}={MODEL_PINS[scope][name]!r} (that is what "
                              f"makes it {scope}); use fusion_gcn.{name}=... to vary the full model")
        if scope == model or (not dot and name not in MODEL_PINS.get(model, {})):
            chosen.append(f"{name}={value}")
    return chosen


def _compare(args: argparse.Namespace) -> int:
    from raysearch import comparison
    from raysearch.comparison_report import write_report

    models = list(comparison.MODEL_DEFAULTS) if args.models == "all" else args.models.split(",")
    from_file = split_file_settings(args.split_file) if args.split_file else {}
    splits = [from_file["split"]] if from_file else args.splits.split(",")
    for split in splits:
        if split not in PROTOCOLS:
            raise RaysearchError(f"--splits: unknown protocol {split!r}; expected some of {', '.join(PROTOCOLS)}")
    settings = [f"{k}={v}" for k, v in from_file.items() if k != "split"]
    configs = {name: config.with_overrides(settings + model_overrides(name, args.overrides))
               for name, config in comparison.model_configs(from_file.get("dataset", args.dataset), models,
                                                            args.config_from).items()}
    jobs = comparison.plan(configs, splits, args.seeds, not args.no_ablations,
                           None if args.lr_split == "none" else args.lr_split)
    started = time.perf_counter()
    runs = comparison.compare(jobs, args.out, args.data_dir, args.workers, args.threads, args.address,
                              run=not args.report_only)
    if runs.empty:
        raise RaysearchError(f"{args.out / comparison.RUNS_FILE}: no finished run of this comparison to report")
    weights = comparison.read_table(args.out / comparison.WEIGHTS_FILE)
    minutes = (time.perf_counter() - started) / 60
    invocations = comparison.read_table(args.out / comparison.INVOCATIONS_FILE)
    wall = (f"; {len(invocations)} recorded invocation(s) ran its jobs in {invocations['minutes'].sum():.1f} min "
            f"of wall time in all ({comparison.INVOCATIONS_FILE})" if len(invocations) else "")
    header = (f"# Comparison: {from_file.get('dataset', args.dataset)}, {', '.join(splits)}, {args.seeds} seed(s)\n\n"
              f"Command: `raysearch compare {' '.join(sys.argv[2:])}`; this invocation ran for {minutes:.1f} min "
              f"(runs already in comparison.csv were kept){wall}; {args.workers} runs at a time with {args.threads} torch "
              f"thread(s) each, on {os.cpu_count()} cores, torch {torch.__version__}. "
              f"{'**Partial report**: ' if len(runs) < len(jobs) else ''}{len(runs)} of {len(jobs)} planned runs "
              f"finished. Every model is scored by the same "
              f"full-ranking evaluation on the same seeded splits (test part; the validation part early-stops and "
              f"selects). Costs: training seconds include per-epoch validation; inference is the scoring time of the "
              f"test ranking per 1,000 users; peak RSS is the run's own process (Python and torch included).\n")
    print(f"report: {write_report(runs, weights, args.out, header)}")
    return 0

