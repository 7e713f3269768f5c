"""Ray Tune search: Optuna TPE + ASHA over trials that each fit a Ray Train ``TorchTrainer``.

Everything lands under ``<storage>/<experiment name>/``: Tune's trial folders (results, TensorBoard
events with HParams), ``train_runs/`` (each trial's Train run and its checkpoints), ``optuna.journal``
(the Optuna study), ``search_space.yaml`` (the resolved space, reused by ``--resume``), and after
the search ``trials.csv``, ``summary.md``, ``best_config.yaml`` and
``best_checkpoint/``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import ray
import yaml
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from raysearch.data import Dataset
from raysearch.distributed import make_trainer
from raysearch.errors import RaysearchError
from raysearch.files import atomic_copy_dir, atomic_write_text
from raysearch.reporting import markdown_table
from raysearch.search_space import SPACE_FILE, SearchSpace

TRAIN_RUNS = "train_runs"
STATUS_COLUMNS = ("trial_id", "status", "stopped_by", "epochs_run", "best_epoch", "best_value", "error")


def run_trial(sampled: dict[str, Any], space: SearchSpace, dataset: Dataset, train_storage: str) -> None:
    """Tune function trainable: one Ray Train run, named after the trial so a restore resumes it."""
    config = space.trial_config(sampled)
    trial_id = tune.get_context().get_trial_id()
    make_trainer(config, dataset, space.resources, f"train-{trial_id}", train_storage,
                 callbacks=[TuneReportCallback()]).fit()


def _trainable(space: SearchSpace, dataset: Dataset, experiment_dir: Path) -> Any:
    fn = tune.with_parameters(run_trial, space=space, dataset=dataset, train_storage=str(experiment_dir / TRAIN_RUNS))
    return tune.with_resources(fn, {"CPU": 0.01})  # the trial driver only waits; workers hold the CPUs


def search(space: SearchSpace, dataset: Dataset, storage: Path, name: str, resume: bool = False) -> Path:
    """Run (or with ``resume`` continue) the search; returns the experiment folder after writing its outputs."""
    storage = storage.resolve()
    experiment_dir = storage / name
    if resume:
        if not tune.Tuner.can_restore(str(experiment_dir)):
            raise RaysearchError(f"{experiment_dir}: no Tune experiment to resume there")
        tuner = tune.Tuner.restore(str(experiment_dir), trainable=_trainable(space, dataset, experiment_dir),
                                   resume_unfinished=True, resume_errored=True)
    else:
        if experiment_dir.exists():
            raise RaysearchError(f"{experiment_dir}: an experiment with this name exists; pass --resume "
                                 f"{experiment_dir} to continue it or choose another --name")
        experiment_dir.mkdir(parents=True)
        atomic_write_text(experiment_dir / SPACE_FILE, yaml.safe_dump(space.to_document(), sort_keys=False))
        tuner = tune.Tuner(
            _trainable(space, dataset, experiment_dir),
            param_space=space.tune_space(),
            tune_config=tune.TuneConfig(
                metric=space.metric, mode="max", num_samples=space.experiment.num_samples,
                max_concurrent_trials=space.experiment.max_concurrent_trials,
                search_alg=OptunaSearch(
                    seed=space.experiment.seed, study_name=name,
                    storage=optuna.storages.JournalStorage(
                        optuna.storages.journal.JournalFileBackend(str(experiment_dir / "optuna.journal")))),
                scheduler=ASHAScheduler(time_attr="epoch", max_t=space.config.epochs,
                                        grace_period=space.scheduler.grace_period,
                                        reduction_factor=space.scheduler.reduction_factor),
            ),
            run_config=tune.RunConfig(name=name, storage_path=str(storage)),
        )
    results = tuner.fit()
    write_outputs(space, results, experiment_dir)
    return experiment_dir


def trials_table(space: SearchSpace, results: tune.ResultGrid) -> pd.DataFrame:
    """One row per trial: its params, status, how it ended, epochs run, final and best metrics."""
    rows = []
    for result in results:
        metrics = result.metrics or {}
        epochs = int(metrics.get("epoch", 0))
        best_value = metrics.get("best_value", math.nan)
        if result.error is not None:
            stopped_by = "error"
        elif epochs >= space.config.epochs:
            stopped_by = "completed"
        elif epochs - int(metrics.get("best_epoch", epochs)) >= space.config.patience:
            stopped_by = "patience"
        else:
            stopped_by = "asha"
        rows.append({
            "trial_id": metrics.get("trial_id", Path(result.path).name),
            "status": "ERROR" if result.error is not None else "TERMINATED",
            "stopped_by": stopped_by, "epochs_run": epochs, "best_epoch": metrics.get("best_epoch"),
            "best_value": best_value if isinstance(best_value, float) and math.isfinite(best_value) else math.nan,
            "error": str(result.error).splitlines()[0] if result.error is not None else "",
            **{f"param_{p.key}": result.config.get(p.key) for p in space.params},
            **{f"final_{k}": v for k, v in metrics.items() if k.startswith("valid_")},
            "path": result.path,
        })
    return pd.DataFrame(rows)


def write_outputs(space: SearchSpace, results: tune.ResultGrid, experiment_dir: Path) -> None:
    """trials.csv, summary.md, best_config.yaml and best_checkpoint/, each written atomically."""
    table = trials_table(space, results)
    atomic_write_text(experiment_dir / "trials.csv", table.to_csv(index=False))
    ranked = table.dropna(subset=["best_value"]).sort_values("best_value", ascending=False)
    if ranked.empty:
        raise RaysearchError(f"{experiment_dir}: no trial reported a finite {space.metric}; see trials.csv")
    best = ranked.iloc[0]
    best_result = next(r for r in results if r.path == best["path"])
    config = space.trial_config({p.key: best_result.config[p.key] for p in space.params})
    atomic_write_text(experiment_dir / "best_config.yaml",
                f"# best trial {best['trial_id']}: {space.metric} = {best['best_value']:.6f} "
                f"at epoch {int(best['best_epoch'])}\n" + config.to_yaml())
    atomic_copy_dir(_best_checkpoint_path(best_result, space.metric), experiment_dir / "best_checkpoint")
    shown = ["trial_id", "stopped_by", "epochs_run", "best_epoch", "best_value", *[f"param_{p.key}" for p in space.params]]
    top = ranked[shown].head(10)
    atomic_write_text(experiment_dir / "summary.md", f"# {experiment_dir.name}: top trials by {space.metric}\n\n"
                + markdown_table(shown, top.values.tolist()) + "\n")


def _best_checkpoint_path(result: Any, metric: str) -> Path:
    """The kept checkpoint of the trial's best epoch (Ray Train V2 reports checkpoint paths as metrics)."""
    frame = result.metrics_dataframe
    rows = frame.dropna(subset=["checkpoint_path"]) if "checkpoint_path" in frame else frame.iloc[0:0]
    if rows.empty:
        raise RaysearchError(f"{result.path}: the best trial reported no checkpoint")
    return Path(rows.loc[rows[metric].idxmax(), "checkpoint_path"])


def init_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Connect to a cluster (``address``) or start an embedded local Ray with ``num_cpus`` logical CPUs."""
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count())
