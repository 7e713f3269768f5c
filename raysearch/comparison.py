"""``raysearch compare``: every model x split x seed on identical splits, scored by one evaluation function.

Besides the models it runs the full model's ablations and its learning-rate sensitivity. Runs go to
a local process pool (or to Ray tasks when ``address`` names a cluster); each run is one fresh
process, so its peak memory is its own. Every finished run is appended to ``comparison.csv`` at once:
an interrupted compare picks up where it stopped, and a changed config reruns only what changed.
"""

from __future__ import annotations

import dataclasses
import resource
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from raysearch.config import TrainConfig
from raysearch.data import Dataset, load_dataset
from raysearch.datafiles import data_root, dataset_dir
from raysearch.errors import ConfigError, TrainingDiverged
from raysearch.evaluation import evaluate
from raysearch.files import atomic_write_text
from raysearch.recommenders import can_score, train
from raysearch.split_files import split_for
from raysearch.splits import eval_task

RUNS_FILE = "comparison.csv"
WEIGHTS_FILE = "fusion_weights.csv"
INVOCATIONS_FILE = "invocations.csv"  # one row per invocation that ran jobs: the whole compare's wall time
WEIGHT_COLUMNS = ("key", "split", "seed", "side", "segment", "field", "weight", "entities")
# Each model's default config (keys over TrainConfig's defaults); search_spaces/baselines/ tune them.
MODEL_DEFAULTS: dict[str, dict] = {
    "fusion_gcn": {},
    "mf": {"rec_loss": "bpr", "num_negatives": 4, "learning_rate": 0.005},
    "lightgcn": {"rec_loss": "bpr", "num_negatives": 4, "learning_rate": 0.005},
    "deepfm": {"embedding_dim": 16, "num_negatives": 4, "learning_rate": 0.001, "batch_size": 1024},
    "autorec": {"embedding_dim": 256, "learning_rate": 0.001, "weight_decay": 1e-5, "batch_size": 128},
    "lightgbm": {"learning_rate": 0.1, "num_negatives": 4, "num_trees": 200},
    "popularity": {},
}
ABLATIONS: dict[str, dict] = {
    "no_contrastive": {"contrastive_weight": 0.0},
    "mean_fusion": {"fusion": "mean"},
    "no_graph": {"num_layers": 0},
    "no_attributes": {"fusion": "none", "contrastive_weight": 0.0},
}
LEARNING_RATES = (0.001, 0.005, 0.01, 0.05, 0.1)


@dataclasses.dataclass(frozen=True)
class Job:
    """One run: a study (models | ablations | learning_rate), the variant's name and its full config."""

    study: str
    variant: str
    config: TrainConfig

    @property
    def key(self) -> str:
        """Identifies the run in ``comparison.csv``: same key, same run."""
        return f"{self.study}|{self.variant}|{config_label(self.config)}"


def config_label(config: TrainConfig) -> str:
    """The config's keys that differ from TrainConfig's defaults, as ``k=v`` pairs."""
    default = TrainConfig(model=config.model).to_dict()
    return " ".join(f"{k}={v}" for k, v in config.to_dict().items() if v != default[k] or k == "model")


def model_configs(dataset: str, models: Iterable[str], config_from: Iterable[Path] = ()) -> dict[str, TrainConfig]:
    """Each model's config: its default, or the ``best_config.yaml`` of a search experiment that tuned it."""
    configs = {}
    for name in models:
        if name not in MODEL_DEFAULTS:
            raise ConfigError(f"--models: unknown model {name!r}; expected 'all' or some of {', '.join(MODEL_DEFAULTS)}")
        configs[name] = TrainConfig.from_dict({"model": name, "dataset": dataset, **MODEL_DEFAULTS[name]})
    for experiment in config_from:
        best = TrainConfig.from_yaml(Path(experiment) / "best_config.yaml")
        if best.model in configs:
            configs[best.model] = dataclasses.replace(best, dataset=dataset)
    return configs


def plan(configs: dict[str, TrainConfig], splits: list[str], seeds: int, ablations: bool = True,
         lr_split: str | None = "warm") -> list[Job]:
    """Models on every split and seed; the full model's ablations on every split; its learning rates
    on ``lr_split``. Seeds are 1..seeds, each drawing its own split; seed-major, so an interrupted
    compare holds whole seeds."""
    jobs = []
    for seed in range(1, seeds + 1):
        for split in splits:
            at = {"split": split, "seed": seed}
            jobs += [Job("models", name, dataclasses.replace(c, **at)) for name, c in configs.items()]
            full = dataclasses.replace(configs["fusion_gcn"], **at) if "fusion_gcn" in configs else None
            if full is not None and ablations:
                jobs += [Job("ablations", name, dataclasses.replace(full, **change)) for name, change in ABLATIONS.items()]
            if full is not None and split == lr_split:
                jobs += [Job("learning_rate", f"lr={lr:g}", dataclasses.replace(full, learning_rate=lr))
                         for lr in LEARNING_RATES]
    return jobs


def run_job(job: Job, data_dir: str | None, threads: int) -> tuple[dict, list[dict]]:
    """Train and test one job in this process: a metrics row (plus costs) and its fusion-weight rows."""
    torch.set_num_threads(threads)
    config = job.config
    row = {"key": job.key, "study": job.study, "variant": job.variant, "model": config.model,
           "split": config.split, "seed": config.seed, "config": config_label(config)}
    if not can_score(config):
        return {**row, "status": "n/a (needs interactions)"}, []
    dataset = load_dataset(config.dataset, dataset_dir(config.dataset, data_root(data_dir)), config.rating_threshold,
                           config.text_buckets)
    return score_job(job, dataset, row)


def score_job(job: Job, dataset: Dataset, row: dict) -> tuple[dict, list[dict]]:
    """Train ``job`` on ``dataset`` and score the test part: ``row`` completed with metrics and costs."""
    config = job.config
    split = split_for(config, dataset)
    started = time.perf_counter()
    try:
        fitted = train(config, dataset, split)
    except TrainingDiverged as err:
        return {**row, "status": f"diverged: {err}"}, []
    train_seconds = time.perf_counter() - started
    scoring = [0.0]

    def timed(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        tick = time.perf_counter()
        scores = fitted.scorer(users, items)
        scoring[0] += time.perf_counter() - tick
        return scores

    task = eval_task(split, "test")
    test = evaluate(timed, task, dataset.num_items, config.topk, config.eval_batch_users)
    row |= {"status": "ok", **test, "best_epoch": fitted.best_epoch, "epochs_run": len(fitted.history),
            "train_seconds": train_seconds, "infer_ms_per_1k_users": 1e6 * scoring[0] / len(task.users),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    return row, weight_rows(job, dataset, fitted.fusion_weights)


def weight_rows(job: Job, dataset: Dataset, weights: dict[str, np.ndarray]) -> list[dict]:
    """Mean attention weight per field, for all users / items and per user age group."""
    if job.study != "models" or not weights:
        return []
    base = {"key": job.key, "split": job.config.split, "seed": job.config.seed}
    rows = []
    for side, fields in (("user", dataset.user_fields), ("item", dataset.item_fields)):
        segments = {"all": np.ones(len(weights[side]), dtype=bool)}
        age = next((f for f in fields if f.name == "age"), None)
        if age is not None:
            first = age.tokens[age.offsets[:-1]]
            segments |= {f"age {age.vocab[t]}": first == t for t in np.unique(first)}
        for segment, mask in segments.items():
            means = weights[side][mask].mean(0)
            rows += [{**base, "side": side, "segment": segment, "field": f.name, "weight": float(w),
                      "entities": int(mask.sum())} for f, w in zip(fields, means)]
    return rows


def execute(jobs: list[Job], data_dir: str | None, workers: int, threads: int,
            address: str | None = None) -> Iterator[tuple[dict, list[dict]]]:
    """Run jobs in parallel, yielding each result as it finishes: Ray tasks on ``address``, else a
    local pool with one fresh process per run."""
    if address is not None:
        import ray

        ray.init(address=address, ignore_reinit_error=True)
        remote = ray.remote(num_cpus=threads, max_calls=1)(run_job)
        pending = [remote.remote(job, data_dir, threads) for job in jobs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
        return
    with ProcessPoolExecutor(workers, max_tasks_per_child=1) as pool:
        futures = [pool.submit(run_job, job, data_dir, threads) for job in jobs]
        for future in as_completed(futures):
            yield future.result()


def compare(jobs: list[Job], out: Path, data_dir: str | None = None, workers: int = 2, threads: int = 1,
            address: str | None = None, run: bool = True) -> pd.DataFrame:
    """Run the jobs not yet in ``out/comparison.csv`` (none if not ``run``) and return the rows of the
    jobs that have finished."""
    out.mkdir(parents=True, exist_ok=True)
    runs, weights = read_table(out / RUNS_FILE), read_table(out / WEIGHTS_FILE)
    todo = [job for job in jobs if job.key not in set(runs.get("key", ()))] if run else []
    wanted = {job.key for job in jobs}
    started, finished = time.time(), 0
    try:
        with tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="compare", unit="run", disable=not todo) as bar:
            for row, weight in execute(todo, data_dir, workers, threads, address):
                runs = pd.concat([runs, pd.DataFrame([row])], ignore_index=True)
                weights = pd.concat([weights, pd.DataFrame(weight, columns=list(WEIGHT_COLUMNS))], ignore_index=True)
                atomic_write_text(out / RUNS_FILE, runs.to_csv(index=False))
                atomic_write_text(out / WEIGHTS_FILE, weights.to_csv(index=False))
                finished += 1
                bar.set_postfix_str(f"{row['variant']} {row['split']} seed {row['seed']}")
                bar.update()
    finally:
        if todo:
            record_invocation(out, started, finished, workers, threads)
    return runs[runs["key"].isin(wanted)].reset_index(drop=True) if len(runs) else runs


def record_invocation(out: Path, started: float, finished: int, workers: int, threads: int) -> None:
    """Append this invocation's start, wall minutes and finished runs to ``out/invocations.csv``, also when
    it is interrupted, so a compare resumed over several invocations still adds up to one wall time."""
    row = {"started_utc": pd.Timestamp(started, unit="s", tz="UTC").isoformat(timespec="seconds"),
           "minutes": round((time.time() - started) / 60, 2), "runs_finished": finished, "workers": workers,
           "threads": threads}
    table = pd.concat([read_table(out / INVOCATIONS_FILE), pd.DataFrame([row])], ignore_index=True)
    atomic_write_text(out / INVOCATIONS_FILE, table.to_csv(index=False))


def read_table(path: Path) -> pd.DataFrame:
    """A CSV written by :func:`compare`, or an empty frame if there is none yet."""
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()

