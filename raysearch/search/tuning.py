"""Ray Tune search: Optuna TPE + ASHA over trials that each train one model.

A one-worker trial trains in the trial's own process (no worker group to start: a trial costs little
more than its epochs); a trial of ``workers_per_trial > 1`` fits a Ray Train ``TorchTrainer``. Both run
the same :func:`raysearch.search.distributed.train_run`, resume from their last checkpoint after a
failure (Tune's or Train's ``max_failures``), and report the objective (:data:`OBJECTIVE`, the best
validation metric so far), which TPE, ASHA and the best trial all use (checkpoints are ranked by their
own epoch's validation metric: the best epoch's is the objective).

Everything lands under ``<storage>/<experiment name>/``, where the storage is a local/NFS folder or a
bucket (:mod:`raysearch.search.storage`): Tune's trial folders (results, TensorBoard events with HParams,
a one-worker trial's checkpoints), ``train_runs/`` (each multi-worker trial's Train run and its
checkpoints), ``optuna.journal`` (the Optuna study),
``search_space.yaml`` (the resolved space, reused by ``--resume``), ``split.json`` (the split every
trial trains on, unless ``split``, ``seed`` or ``split_file`` is searched), and after the search
``trials.csv``, ``summary.md``, ``best_config.yaml``, ``best_checkpoint/`` and the plots that explain the
search (PNG, linked from ``summary.md``).
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
import torch
import yaml
from optuna.storages.journal import BaseJournalBackend, JournalFileBackend
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from raysearch.data.movielens import Dataset, load_for
from raysearch.config import Scaling, TrainConfig
from raysearch.data.split_files import SPLIT_FILE, SPLIT_KEYS, split_for, split_text
from raysearch.errors import RaysearchError, TrainingDiverged
from raysearch.markdown import markdown_table
from raysearch.search.distributed import Session, make_trainer, threads, train_run
from raysearch.search.space import JOURNAL_FILE, OBJECTIVE, SPACE_FILE, SearchSpace
from raysearch.search.storage import Location, copy_dir, resolve

TRAIN_RUNS = "train_runs"


DRIVER_CPUS = 0.01  # a multi-worker trial's driver only waits for its workers (Ray refuses 0)
STATE_PERIOD = "1"  # seconds between Tune's experiment-state snapshots (Ray's default: 10 or more), so a driver
# killed after a trial finished or started resumes knowing it, even when trials last seconds


def run_trial(sampled: dict[str, Any], space: SearchSpace, dataset: Dataset, train_storage: Location) -> None:
    """Tune function trainable: one worker trains right here; more fit a Ray Train run named after the trial,
    so a restore resumes it."""
    config = space.trial_config(sampled)
    if space.resources.workers_per_trial == 1:
        device = torch.device("cuda" if space.resources.use_gpu else "cpu")
        session = Session(tune.report, tune.Checkpoint, tune.get_checkpoint(), wrap=lambda model: model.to(device),
                          device=device, keep=lambda metrics: ends(metrics, config), best_of=space.objective_metrics)
        train_run(config, dataset, session, threads(space.resources))
        return
    trial_id = tune.get_context().get_trial_id()
    make_trainer(config, dataset, space.resources, f"train-{trial_id}", train_storage,
                 callbacks=[TuneReportCallback()], best_of=space.objective_metrics).fit()


def trial_resources(scaling: Scaling) -> dict[str, float]:
    """What Tune reserves for a trial: the worker itself when it trains in the trial, else its driver's share
    (a Train run's workers get a placement group of their own)."""
    if scaling.workers_per_trial > 1:
        return {"CPU": DRIVER_CPUS}
    return {"CPU": scaling.cpus_per_worker, "GPU": float(scaling.use_gpu)}


def trial_cpus(scaling: Scaling) -> float:
    """CPUs one trial holds while it runs, its workers included."""
    return trial_resources(scaling)["CPU"] + (scaling.workers_per_trial * scaling.cpus_per_worker
                                              if scaling.workers_per_trial > 1 else 0.0)


def concurrency(space: SearchSpace, cpus: float) -> int:
    """Trials at once: the space's ``max_concurrent_trials``, else as many as ``cpus`` hold (at least 1)."""
    return space.experiment.max_concurrent_trials or max(1, math.floor(cpus / trial_cpus(space.resources) + 1e-9))


def check_grantable(space: SearchSpace, resources: dict[str, float]) -> None:
    """Fail at once when one trial needs more than Ray has (``resources``: ``ray.cluster_resources()``), since
    Tune would wait for it forever."""
    scaling, cpus, gpus = space.resources, resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    keys = "resources.workers_per_trial x resources.cpus_per_worker" + (
        f" + {DRIVER_CPUS} for the trial's driver" if scaling.workers_per_trial > 1 else "")
    if trial_cpus(scaling) > cpus:
        raise RaysearchError(f"{space.source}: {keys} = {scaling.workers_per_trial} x {scaling.cpus_per_worker:g} "
                             f"needs {trial_cpus(scaling):g} CPUs per trial, but Ray has {cpus:g} CPUs "
                             f"(--num-cpus, or the cluster's)")
    if scaling.use_gpu and scaling.workers_per_trial > gpus:
        raise RaysearchError(f"{space.source}: resources.use_gpu with resources.workers_per_trial = "
                             f"{scaling.workers_per_trial} needs {scaling.workers_per_trial} GPUs per trial, "
                             f"but Ray has {gpus:g} GPUs")


def _trainable(space: SearchSpace, dataset: Dataset, experiment: Location) -> Any:
    fn = tune.with_parameters(run_trial, space=space, dataset=dataset, train_storage=experiment / TRAIN_RUNS)
    return tune.with_resources(fn, trial_resources(space.resources))


def ends(metrics: dict[str, float], config: TrainConfig) -> bool:
    """Whether the epoch of ``metrics`` is the run's last (all epochs run, or patience ran out)."""
    return ended_by(int(metrics["epoch"]), int(metrics["best_epoch"]), config) != "asha"


def ended_by(epochs: int, best_epoch: int, config: TrainConfig) -> str:
    """How a trial that did not fail ended: ``completed`` (all epochs), ``patience``, or ``asha`` (stopped early)."""
    if epochs >= config.epochs:
        return "completed"
    return "patience" if epochs - best_epoch >= config.patience else "asha"


class ObjectiveSearch(OptunaSearch):
    """Ray's ``OptunaSearch`` with the study recording what the search did: intermediate values by epoch
    (Tune's iteration restarts after ``--resume``), and trials ASHA stopped as PRUNED (Optuna then takes
    their last intermediate value, the objective when stopped, and TPE ranks them below every complete
    trial) instead of COMPLETE with a value of a few epochs."""

    def __init__(self, config: TrainConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        super().on_trial_result(trial_id, {**result, "training_iteration": result["epoch"]})

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        reported = not error and bool(result) and "epoch" in result
        if reported:  # Tune hands a trial's last result to this call only
            self.on_trial_result(trial_id, result)
        stopped = reported and ended_by(int(result["epoch"]), int(result["best_epoch"]), self.config) == "asha"
        super().on_trial_complete(trial_id, None if stopped else result, error)  # no result: PRUNED


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
           resume: bool = False, callbacks: list[tune.Callback] | None = None,
           stop: tune.Stopper | None = None) -> Location:
    """Run (or with ``resume`` continue) the search of ``dataset`` (as :func:`load_for` loads it for the space's
    config: trials train on the attribute fields it holds) under ``storage`` (a folder or a bucket URI), with Tune
    ``callbacks`` (a benchmark's timers, say) and a Tune ``stop`` criterion (a benchmark's target, say);
    returns the experiment's location after writing its outputs."""
    storage = resolve(storage)
    experiment = storage / name
    filesystem = None if storage.is_local else storage.fs
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", STATE_PERIOD)
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
            tune_config=tune.TuneConfig(  # no metric here: the searcher and ASHA each have theirs
                num_samples=space.experiment.num_samples,
                max_concurrent_trials=concurrency(space, ray.cluster_resources().get("CPU", 1.0)),
                # reused drivers of Train runs hung once Train restarted a worker group (Ray 2.60)
                reuse_actors=space.resources.workers_per_trial == 1,
                search_alg=ObjectiveSearch(
                    space.config, study_name=name, points_to_evaluate=space.first_trials() or None,
                    metric=[o.key for o in space.objectives] or OBJECTIVE,
                    mode=[o.mode for o in space.objectives] or "max",
                    sampler=optuna.samplers.TPESampler(n_startup_trials=space.experiment.startup_trials,
                                                       seed=space.experiment.seed),
                    storage=optuna.storages.JournalStorage(journal_backend(experiment / JOURNAL_FILE))),
                scheduler=ASHAScheduler(metric=OBJECTIVE, mode="max", time_attr="epoch", max_t=space.config.epochs,
                                        grace_period=space.scheduler.grace_period,
                                        reduction_factor=space.scheduler.reduction_factor)
                if space.scheduler.asha else None,
            ),
            run_config=tune.RunConfig(
                name=name, storage_path=storage.path, storage_filesystem=filesystem, callbacks=callbacks, stop=stop,
                failure_config=tune.FailureConfig(max_failures=space.resources.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=space.resources.num_to_keep,
                                                        checkpoint_score_attribute=space.metric,
                                                        checkpoint_score_order="max")),
        )
    try:
        results = tuner.fit()
    except RaysearchError as err:  # storage unreachable beyond the retries (see raysearch.search.storage)
        raise RaysearchError(f"{err}; the search stopped and keeps its finished trials: run `raysearch tune "
                             f"--resume {experiment}` once the storage is reachable") from err
    write_outputs(space, results, experiment)
    return experiment


def trials_table(space: SearchSpace, results: tune.ResultGrid, experiment: Location) -> pd.DataFrame:
    """One row per trial: its params, status, how it ended, epochs run, final and best metrics, the objectives
    at its best epoch (a multi-objective space) and its best epoch's checkpoint (relative to ``experiment``;
    empty when it kept none)."""
    rows = []
    for result in results:
        metrics = result.metrics or {}
        epochs = int(metrics.get("epoch", 0))
        best_value = metrics.get("best_value", math.nan)
        failure = _failure(result.error) if result.error is not None else None
        if failure is not None:
            stopped_by = "diverged" if isinstance(failure, TrainingDiverged) else "error"
        else:
            stopped_by = ended_by(epochs, int(metrics.get("best_epoch", epochs)), space.config)
        rows.append({
            "trial_id": metrics.get("trial_id", Path(result.path).name),
            "status": "ERROR" if failure is not None else "TERMINATED",
            "stopped_by": stopped_by, "epochs_run": epochs, "best_epoch": metrics.get("best_epoch"),
            "best_value": best_value if isinstance(best_value, float) and math.isfinite(best_value) else math.nan,
            "error": (str(failure).splitlines() or [type(failure).__name__])[0] if failure is not None else "",
            "worker_nodes": metrics.get("worker_nodes", ""),
            **{f"param_{p.key}": (result.config or {}).get(p.key) for p in space.params},  # None: never started
            **{o.key: metrics.get(o.key, math.nan) for o in space.objectives},
            **{f"final_{k}": v for k, v in metrics.items() if k.startswith("valid_")},
            "checkpoint": _relative(_best_checkpoint_path(result, space.metric) or "", experiment),
            "path": result.path,
        })
    return pd.DataFrame(rows)


def _relative(path: str, experiment: Location) -> str:
    """``path`` relative to the experiment folder when inside it (so a moved experiment still finds it)."""
    return path.removeprefix(experiment.path.rstrip("/") + "/")


def _failure(error: BaseException) -> BaseException:
    """What a trial failed with: its lowest rank's own exception when Ray Train reports worker errors
    (a ``TrainingDiverged``, say), else the exception the trial raised, without Tune's wrapper."""
    workers = getattr(error, "worker_failures", None) or {}
    return workers[min(workers)] if workers else getattr(error, "cause", None) or error


def write_outputs(space: SearchSpace, results: tune.ResultGrid, experiment: Location) -> None:
    """trials.csv, best_checkpoint/, best_config.yaml (a multi-objective space: the Pareto front's files, see
    :mod:`raysearch.search.pareto`, instead), the plots (:mod:`raysearch.search.plots`) and summary.md
    (linking them), each written whole (see :mod:`raysearch.search.storage`). The best trial is the best
    finished one by ``config.metric`` that kept a checkpoint (a multi-objective space's: a point of its front):
    a trial that errored or diverged is listed in trials.csv (``stopped_by``, ``error``) but never chosen."""
    from raysearch.search import pareto, plots  # matplotlib only where a search ends, not in every trial

    table = trials_table(space, results, experiment)
    (experiment / "trials.csv").write_text(table.to_csv(index=False))
    ranked = table[table["error"] == ""].dropna(subset=["best_value"]).sort_values("best_value", ascending=False)
    if ranked.empty:
        raise RaysearchError(f"{experiment}: no trial finished with a finite {space.metric}; see trials.csv")
    if (ranked["checkpoint"] == "").all():
        raise RaysearchError(f"{experiment}: no finished trial kept a checkpoint; see trials.csv")
    best = ranked[ranked["checkpoint"] != ""].iloc[0]
    configs = {row["trial_id"]: space.trial_config({p.key: result.config[p.key] for p in space.params})
               for row, result in zip(table.to_dict("records"), results) if row["checkpoint"]}
    copy_dir(experiment / best["checkpoint"], experiment / "best_checkpoint")  # first: the config names a whole copy
    shown = ["trial_id", "stopped_by", "epochs_run", "best_epoch", "best_value", *[f"param_{p.key}" for p in space.params]]
    summary = f"# {experiment.name}: top trials by {space.metric}\n\n" + markdown_table(
        shown, ranked[shown].head(10).values.tolist()) + "\n"
    if space.objectives:
        summary += pareto.write_front(space, experiment, table, configs)
    else:
        (experiment / "best_config.yaml").write_text(
            f"# best trial {best['trial_id']}: {space.metric} = {best['best_value']:.6f} "
            f"at epoch {int(best['best_epoch'])}\n" + configs[best["trial_id"]].to_yaml())
    drawn = plots.write_plots(space, experiment, table)
    (experiment / "summary.md").write_text(
        summary + "\n## Plots\n\n" + "".join(f"- [{name}]({name}): {about}\n" for name, about in drawn.written.items())
        + "".join(f"- {name} not drawn: {why}\n" for name, why in drawn.skipped.items()))


def _best_checkpoint_path(result: Any, metric: str) -> str | None:
    """The kept checkpoint of the trial's best epoch (the best by its epoch's ``metric``, which there is the
    objective), as a path in the experiment's filesystem: Tune's own for a one-worker trial, the path a Train
    run reported as a metric for the others (Train V2 hands Tune no checkpoint object). None when the trial
    kept none (a search stopped by a stop criterion can end a trial while its first checkpoint is saved)."""
    if result.checkpoint is not None:
        return result.get_best_checkpoint(metric, "max").path
    frame = result.metrics_dataframe
    rows = frame.dropna(subset=["checkpoint_path"]) if frame is not None and "checkpoint_path" in frame else None
    if rows is None or rows.empty:
        return None
    return str(rows.loc[rows[metric].idxmax(), "checkpoint_path"])


def run_search(space: SearchSpace, storage: Location, name: str, resume: bool = False, data_dir: str | None = None,
               download: bool = False, address: str | None = None, num_cpus: int | None = None) -> Location:
    """``raysearch tune``: load the space's dataset, join (or start) Ray, run or resume the search."""
    dataset = load_for(space.config, data_dir, download)
    if init_ray(address, num_cpus):  # a cluster may still grow (autoscaling): checked only on Ray started here
        check_grantable(space, ray.cluster_resources())
    return search(space, dataset, storage, name, resume=resume)


def init_ray(address: str | None, num_cpus: int | None = None) -> bool:
    """Connect to a cluster (``address``) or start an embedded local Ray with ``num_cpus`` logical CPUs;
    True when this started Ray here."""
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address)
        return False
    ray.init(num_cpus=num_cpus or os.cpu_count())
    return True
