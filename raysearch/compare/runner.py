"""``raysearch compare``: every model x split x seed on identical splits, scored by one evaluation function.

Besides the models it runs the full model's ablations and its learning-rate sensitivity (:mod:`.plan`). Runs go to
a local process pool (or to Ray tasks when ``address`` names a cluster); each run is one fresh
process, so its peak memory is its own. Every finished run is appended to ``comparison.csv`` at once:
an interrupted compare picks up where it stopped, and a changed config reruns only what changed.
"""

from __future__ import annotations

import resource
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from raysearch.atomic_files import atomic_write_text
from raysearch.compare.plan import Job, config_label, model_configs, model_overrides, plan, run_id, split_seeds
from raysearch.compare.report import INVOCATIONS_FILE, RUNS_FILE, WEIGHTS_FILE, invocation_header, write_report
from raysearch.config import PROTOCOLS
from raysearch.data.downloads import data_root, dataset_dir
from raysearch.data.movielens import Dataset, load_for
from raysearch.data.protocols import eval_tasks
from raysearch.data.split_files import split_file_settings, split_for
from raysearch.errors import ConfigError, RaysearchError, TrainingDiverged
from raysearch.evaluation.scoring import by_part, evaluate
from raysearch.registry import MODELS

WEIGHT_COLUMNS = ("key", "split", "seed", "side", "segment", "field", "weight", "entities")
NOT_SCORED = "n/a (needs interactions)"  # an ID-only model on a cold protocol
NOT_SERVED = "n/a (no mixed protocol)"  # a model that does not serve the mixed protocol


def run_job(job: Job, data_dir: str | None, threads: int) -> tuple[dict, list[dict]]:
    """Train and test one job in this process: a metrics row (plus costs) and its fusion-weight rows."""
    torch.set_num_threads(threads)
    config = job.config
    row = {"key": job.key, "study": job.study, "variant": job.variant, "model": config.model,
           "split": config.split, "seed": config.seed, "config": config_label(config)}
    if not config.can_score():
        return {**row, "status": NOT_SERVED if config.split == "mixed" and not config.spec.mixed else NOT_SCORED}, []
    return score_job(job, load_for(config, data_dir), row)


def score_job(job: Job, dataset: Dataset, row: dict) -> tuple[dict, list[dict]]:
    """Train ``job`` on ``dataset`` and score the test part: ``row`` completed with metrics and costs."""
    config = job.config
    split = split_for(config, dataset)
    started = time.perf_counter()
    try:
        fitted = config.spec.train(config, dataset, split)
    except TrainingDiverged as err:
        return {**row, "status": f"diverged: {err}"}, []
    train_seconds = time.perf_counter() - started
    scoring = [0.0]

    def timed(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        tick = time.perf_counter()
        scores = fitted.scorer(users, items)
        scoring[0] += time.perf_counter() - tick
        return scores

    tasks = eval_tasks(split, "test", dataset.num_items)
    test = by_part(tasks, lambda task: evaluate(timed, task, dataset.num_items, config.topk, config.eval_batch_users))
    users = sum(len(task.users) for task in tasks.values())
    row |= {"status": "ok", **test, "best_epoch": fitted.best_epoch, "epochs_run": len(fitted.history),
            "train_seconds": train_seconds, "infer_ms_per_1k_users": 1e6 * scoring[0] / users,
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
    done = {run_id(key) for key in runs.get("key", ())}
    todo = [job for job in jobs if run_id(job.key) not in done] if run else []
    wanted = {run_id(job.key) for job in jobs}
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
    return runs[runs["key"].map(run_id).isin(wanted)].reset_index(drop=True) if len(runs) else runs


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


def run_comparison(out: Path, *, dataset: str, splits: list[str], models: list[str], seeds: str,
                   config_from: list[Path], ablations: bool, lr_split: str | None, overrides: list[str],
                   split_file: Path | None, data_dir: str | None, workers: int, threads: int, download: bool = False,
                   address: str | None = None, run: bool = True, command: str = "") -> Path:
    """``raysearch compare``: plan the runs of ``models`` (empty: every registered model; a ``split_file``'s
    protocol and dataset replace ``splits`` and ``dataset``), run those not yet in ``out`` (none unless ``run``;
    the dataset fetched first if ``download``), write the report; returns its path."""
    from_file = split_file_settings(split_file) if split_file else {}
    splits = [from_file["split"]] if from_file else splits
    for split in splits:
        if split not in PROTOCOLS:
            raise ConfigError(f"--splits: unknown protocol {split!r}; expected some of {', '.join(PROTOCOLS)}")
    dataset = from_file.get("dataset", dataset)
    settings = [f"{k}={v}" for k, v in from_file.items() if k != "split"]
    configs = {name: config.with_overrides(settings + model_overrides(name, overrides))
               for name, config in model_configs(dataset, models or list(MODELS), config_from).items()}
    counts = split_seeds(seeds, splits)
    jobs = plan(configs, splits, counts, ablations, lr_split)
    if download and run:
        dataset_dir(dataset, data_root(data_dir), download=True)
    started = time.perf_counter()
    runs = compare(jobs, out, data_dir, workers, threads, address, run=run)
    if runs.empty:
        raise RaysearchError(f"{out / RUNS_FILE}: no finished run of this comparison to report")
    header = invocation_header(dataset, counts, command, (time.perf_counter() - started) / 60,
                               read_table(out / INVOCATIONS_FILE), workers, threads, len(runs), len(jobs))
    return write_report(runs, read_table(out / WEIGHTS_FILE), out, header)
