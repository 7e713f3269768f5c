"""Ray Tune search: Optuna TPE + ASHA over trials that each fit a Ray Train ``TorchTrainer``.

Everything lands under ``<storage>/<experiment name>/``, where the storage is a local/NFS folder or a
bucket (:mod:`raysearch.search.storage`): Tune's trial folders (results, TensorBoard events with HParams),
``train_runs/`` (each trial's Train run and its checkpoints), ``optuna.journal`` (the Optuna study),
``search_space.yaml`` (the resolved space, reused by ``--resume``), ``split.json`` (the split every
trial trains on, unless ``split``, ``seed`` or ``split_file`` is searched), and after the search
``trials.csv``, ``summary.md``, ``best_config.yaml`` and ``best_checkpoint/``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import ray
import yaml
from optuna.storages.journal import BaseJournalBackend, JournalFileBackend
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from raysearch.data.movielens import Dataset, load_for
from raysearch.data.split_files import SPLIT_FILE, SPLIT_KEYS, split_for, split_text
from raysearch.errors import RaysearchError, TrainingDiverged
from raysearch.markdown import markdown_table
from raysearch.search.distributed import make_trainer
from raysearch.search.space import SPACE_FILE, SearchSpace
from raysearch.search.storage import Location, copy_dir, resolve

TRAIN_RUNS = "train_runs"
JOURNAL_FILE = "optuna.journal"


def run_trial(sampled: dict[str, Any], space: SearchSpace, dataset: Dataset, train_storage: Location) -> None:
    """Tune function trainable: one Ray Train run, named after the trial so a restore resumes it."""
    config = space.trial_config(sampled)
    trial_id = tune.get_context().get_trial_id()
    make_trainer(config, dataset, space.resources, f"train-{trial_id}", train_storage,
                 callbacks=[TuneReportCallback()]).fit()


def _trainable(space: SearchSpace, dataset: Dataset, experiment: Location) -> Any:
    fn = tune.with_parameters(run_trial, space=space, dataset=dataset, train_storage=experiment / TRAIN_RUNS)
    return tune.with_resources(fn, {"CPU": 0.01})  # the trial driver only waits; workers hold the CPUs


class ObjectJournalBackend(BaseJournalBackend):
    """Optuna journal mirrored to one object, in ``JournalFileBackend``'s JSON-lines format.

    Object stores have neither appends nor the file locks Optuna's file backend relies on, so the
    journal is kept in memory and every append rewrites the object (one atomic PUT; the journal is a
    few KB per trial). That is safe because the Tune driver, which runs the searcher, is the
    journal's only writer. Pickled (in Tune's searcher state) it keeps only its location and
    re-reads the object when unpickled, so ``--resume`` on any machine continues the same study.
    """

    def __init__(self, location: Location) -> None:
        self.location = location
        self._lines = location.read_text().splitlines() if location.is_file() else []

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self._lines[log_number_from:]]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self._lines += [json.dumps(log, separators=(",", ":")) for log in logs]
        self.location.write_text("\n".join(self._lines) + "\n")

    def __getstate__(self) -> dict[str, Any]:
        return {"location": self.location}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["location"])


def journal_backend(location: Location) -> BaseJournalBackend:
    """Optuna's own file backend on a local/NFS path, the mirrored object in a bucket."""
    return JournalFileBackend(location.path) if location.is_local else ObjectJournalBackend(location)


def search(space: SearchSpace, dataset: Dataset, storage: str | os.PathLike | Location, name: str,
           resume: bool = False) -> Location:
    """Run (or with ``resume`` continue) the search under ``storage`` (a folder or a bucket URI);
    returns the experiment's location after writing its outputs."""
    storage = resolve(storage)
    experiment = storage / name
    filesystem = None if storage.is_local else storage.fs
    if resume:
        if not tune.Tuner.can_restore(experiment.path, storage_filesystem=filesystem):
            raise RaysearchError(f"{experiment}: no Tune experiment to resume there")
        tuner = tune.Tuner.restore(experiment.path, trainable=_trainable(space, dataset, experiment),
                                   resume_unfinished=True, resume_errored=True, storage_filesystem=filesystem)
    else:
        if experiment.exists():
            raise RaysearchError(f"{experiment}: an experiment with this name exists; pass --resume "
                                 f"{experiment} to continue it or choose another --name")
        shared = not {p.key for p in space.params} & set(SPLIT_KEYS)  # else each trial has its own split
        split = split_text(split_for(space.config, dataset), dataset) if shared else None  # checks a split_file
        (experiment / SPACE_FILE).write_text(yaml.safe_dump(space.to_document(), sort_keys=False))
        if split is not None:
            (experiment / SPLIT_FILE).write_text(split)
        tuner = tune.Tuner(
            _trainable(space, dataset, experiment),
            param_space=space.tune_space(),
            tune_config=tune.TuneConfig(
                metric=space.metric, mode="max", num_samples=space.experiment.num_samples,
                max_concurrent_trials=space.experiment.max_concurrent_trials,
                search_alg=OptunaSearch(
                    seed=space.experiment.seed, study_name=name,
                    storage=optuna.storages.JournalStorage(journal_backend(experiment / JOURNAL_FILE))),
                scheduler=ASHAScheduler(time_attr="epoch", max_t=space.config.epochs,
                                        grace_period=space.scheduler.grace_period,
                                        reduction_factor=space.scheduler.reduction_factor),
            ),
            run_config=tune.RunConfig(name=name, storage_path=storage.path, storage_filesystem=filesystem),
        )
    try:
        results = tuner.fit()
    except RaysearchError as err:  # storage unreachable beyond the retries (see raysearch.search.storage)
        raise RaysearchError(f"{err}; the search stopped and keeps its finished trials: run `raysearch tune "
                             f"--resume {experiment}` once the storage is reachable") from err
    write_outputs(space, results, experiment)
    return experiment


def trials_table(space: SearchSpace, results: tune.ResultGrid) -> pd.DataFrame:
    """One row per trial: its params, status, how it ended, epochs run, final and best metrics."""
    rows = []
    for result in results:
        metrics = result.metrics or {}
        epochs = int(metrics.get("epoch", 0))
        best_value = metrics.get("best_value", math.nan)
        failure = _failure(result.error) if result.error is not None else None
        if failure is not None:
            stopped_by = "diverged" if isinstance(failure, TrainingDiverged) else "error"
        elif epochs >= space.config.epochs:
            stopped_by = "completed"
        elif epochs - int(metrics.get("best_epoch", epochs)) >= space.config.patience:
            stopped_by = "patience"
        else:
            stopped_by = "asha"
        rows.append({
            "trial_id": metrics.get("trial_id", Path(result.path).name),
            "status": "ERROR" if failure is not None else "TERMINATED",
            "stopped_by": stopped_by, "epochs_run": epochs, "best_epoch": metrics.get("best_epoch"),
            "best_value": best_value if isinstance(best_value, float) and math.isfinite(best_value) else math.nan,
            "error": (str(failure).splitlines() or [type(failure).__name__])[0] if failure is not None else "",
            "worker_nodes": metrics.get("worker_nodes", ""),
            **{f"param_{p.key}": (result.config or {}).get(p.key) for p in space.params},  # None: never started
            **{f"final_{k}": v for k, v in metrics.items() if k.startswith("valid_")},
            "path": result.path,
        })
    return pd.DataFrame(rows)


def _failure(error: BaseException) -> BaseException:
    """What a trial failed with: its lowest rank's own exception when Ray Train reports worker errors
    (a ``TrainingDiverged``, say), else the exception the trial raised, without Tune's wrapper."""
    workers = getattr(error, "worker_failures", None) or {}
    return workers[min(workers)] if workers else getattr(error, "cause", None) or error


def write_outputs(space: SearchSpace, results: tune.ResultGrid, experiment: Location) -> None:
    """trials.csv, best_checkpoint/, best_config.yaml and summary.md, each written whole (see
    :mod:`raysearch.search.storage`). The best trial is the best finished one: a trial that errored or diverged
    is listed in trials.csv (``stopped_by``, ``error``) but never chosen."""
    table = trials_table(space, results)
    (experiment / "trials.csv").write_text(table.to_csv(index=False))
    ranked = table[table["error"] == ""].dropna(subset=["best_value"]).sort_values("best_value", ascending=False)
    if ranked.empty:
        raise RaysearchError(f"{experiment}: no trial finished with a finite {space.metric}; see trials.csv")
    best = ranked.iloc[0]
    best_result = next(r for r in results if r.path == best["path"])
    config = space.trial_config({p.key: best_result.config[p.key] for p in space.params})
    checkpoint = Location(experiment.fs, _best_checkpoint_path(best_result, space.metric), experiment.scheme)
    copy_dir(checkpoint, experiment / "best_checkpoint")  # first: best_config.yaml only ever names a whole copy
    (experiment / "best_config.yaml").write_text(
        f"# best trial {best['trial_id']}: {space.metric} = {best['best_value']:.6f} "
        f"at epoch {int(best['best_epoch'])}\n" + config.to_yaml())
    shown = ["trial_id", "stopped_by", "epochs_run", "best_epoch", "best_value", *[f"param_{p.key}" for p in space.params]]
    top = ranked[shown].head(10)
    (experiment / "summary.md").write_text(f"# {experiment.name}: top trials by {space.metric}\n\n"
                                           + markdown_table(shown, top.values.tolist()) + "\n")


def _best_checkpoint_path(result: Any, metric: str) -> str:
    """The kept checkpoint of the trial's best epoch (Ray Train V2 reports checkpoint paths as metrics),
    as a path in the experiment's filesystem."""
    frame = result.metrics_dataframe
    rows = frame.dropna(subset=["checkpoint_path"]) if "checkpoint_path" in frame else frame.iloc[0:0]
    if rows.empty:
        raise RaysearchError(f"{result.path}: the best trial reported no checkpoint")
    return str(rows.loc[rows[metric].idxmax(), "checkpoint_path"])


def run_search(space: SearchSpace, storage: Location, name: str, resume: bool = False, data_dir: str | None = None,
               download: bool = False, address: str | None = None, num_cpus: int | None = None) -> Location:
    """``raysearch tune``: load the space's dataset, join (or start) Ray, run or resume the search."""
    dataset = load_for(space.config, data_dir, download)
    init_ray(address, num_cpus)
    return search(space, dataset, storage, name, resume=resume)


def init_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Connect to a cluster (``address``) or start an embedded local Ray with ``num_cpus`` logical CPUs."""
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count())
