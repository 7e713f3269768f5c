"""One training run hosted by Ray: in a Tune trial's own process, or on a Ray Train worker group.

:func:`train_run` is the same for both hosts (a :class:`Session` says which): it resumes from the host's
checkpoint and runs :func:`raysearch.train.fusion_gcn.run_epochs` for the models that train
data-parallel (``ModelSpec.data_parallel``), the registry trainer for the others. On a Ray Train
worker group (:func:`make_trainer`, for ``workers_per_trial > 1``) the model is wrapped by
``ray.train.torch.prepare_model`` (DDP: gloo on CPU, NCCL on GPU) and every rank reports each epoch (a
barrier); ranks share out the batches and the validation users (:class:`~raysearch.train.ranks.Ranks`),
so all report identical metrics. Rank 0 attaches a checkpoint when the epoch improved the objective (the
best epoch is what the search keeps) and when ``session.keep`` says so: on a worker group every epoch (a
restarted group resumes where it was), in a trial its last epoch (a finished trial that ``--resume`` runs
again then has nothing left to do; a checkpoint every epoch would be overhead). Every report
also names the Ray nodes the run's workers are on (``worker_nodes``), so a search on a cluster shows
where each trial ran. Storage is a local/NFS folder or a bucket (:mod:`raysearch.search.storage`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist

from raysearch.config import Scaling, TrainConfig
from raysearch.data.movielens import Dataset
from raysearch.data.split_files import split_for
from raysearch.search.storage import Location, resolve
from raysearch.train.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_checkpoint
from raysearch.train.fusion_gcn import run_epochs
from raysearch.train.ranks import Ranks


@dataclass(frozen=True)
class Session:
    """What a run takes from the Ray process that hosts it: where to report (``ray.train.report`` or
    ``ray.tune.report``, with that API's checkpoint class), the checkpoint to resume from, its ranks, its
    model wrapper and its device."""

    report: Callable[..., None]  # report(metrics, checkpoint=None)
    checkpoint_type: type  # ray.train.Checkpoint or ray.tune.Checkpoint
    checkpoint: Any = None  # the one to resume from
    ranks: Ranks = field(default_factory=Ranks)
    wrap: Callable[[torch.nn.Module], torch.nn.Module] = lambda model: model
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    keep: Callable[[dict[str, float]], bool] = lambda metrics: False  # checkpoint this epoch though not improved
    best_of: tuple[str, ...] = ()  # metrics each report also gives at the best epoch so far, as best_<name>


class RayReporter:
    """Reports each epoch from every rank, with ``extra`` values and the ``session.best_of`` metrics of the best
    epoch so far (``best``: those of a resumed run's best epoch, when known); rank 0 attaches the checkpoint of
    an improved epoch, or of one ``session.keep`` keeps."""

    def __init__(self, session: Session, extra: dict[str, Any] | None = None,
                 best: dict[str, float] | None = None) -> None:
        self.session = session
        self.extra = extra or {}
        self.best = {k: best[k] for k in session.best_of if k in best} if best else {}

    def __call__(self, metrics: dict[str, float], checkpoint: Callable[[], dict], improved: bool) -> None:
        if metrics["epoch"] == metrics["best_epoch"]:
            self.best = {k: metrics[k] for k in self.session.best_of}
        metrics = {**metrics, **self.extra, **{f"best_{k}": v for k, v in self.best.items()}}
        if self.session.ranks.rank != 0 or not (improved or self.session.keep(metrics)):
            self.session.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(checkpoint(), Path(folder) / CHECKPOINT_FILE)
            self.session.report(metrics, checkpoint=self.session.checkpoint_type.from_directory(folder))


def worker_nodes() -> str:
    """Ray node ids of all workers of this run, sorted and comma-separated (one all-gather)."""
    node = ray.get_runtime_context().get_node_id()
    if not dist.is_initialized():
        return node
    nodes: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(nodes, node)
    return ",".join(sorted(set(nodes)))


def train_run(config: TrainConfig, dataset: Dataset, session: Session, threads: int) -> None:
    """One run on this process with ``threads`` torch threads: resumed from the session's checkpoint,
    reporting every epoch to it."""
    torch.set_num_threads(threads)
    resume = None
    if session.checkpoint is not None:
        with session.checkpoint.as_directory() as folder:
            resume = load_checkpoint(Path(folder) / CHECKPOINT_FILE)
    best = resume["metrics"] if resume is not None and resume["epoch"] == resume["metrics"].get("best_epoch") else None
    reporter = RayReporter(session, {"worker_nodes": worker_nodes()}, best)
    split = split_for(config, dataset)
    if not config.spec.data_parallel:  # one worker, no resume
        config.spec.train(config, dataset, split, reporter)
        return
    run_epochs(config, dataset, split, reporter, ranks=session.ranks, wrap=session.wrap, resume=resume,
               device=session.device)


def threads(scaling: Scaling) -> int:
    """Torch threads of one worker: its whole CPUs, at least 1."""
    return max(1, int(scaling.cpus_per_worker))


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point: ``loop_config`` holds the config dict, the dataset, the torch threads and the
    metrics reported at the best epoch too (``best_of``)."""
    context = ray.train.get_context()
    session = Session(ray.train.report, ray.train.Checkpoint, ray.train.get_checkpoint(),
                      Ranks(context.get_world_rank(), context.get_world_size()), ray.train.torch.prepare_model,
                      ray.train.torch.get_device(), keep=lambda metrics: True, best_of=tuple(loop_config["best_of"]))
    train_run(TrainConfig.from_dict(loop_config["config"]), loop_config["dataset"], session, loop_config["threads"])


def make_trainer(config: TrainConfig, dataset: Dataset, scaling: Scaling, run_name: str, storage: str | Location,
                 callbacks: list | None = None, best_of: tuple[str, ...] = ()) -> ray.train.torch.TorchTrainer:
    """A ``TorchTrainer`` for one run under ``storage`` (a folder or a bucket URI), whose reports also give the
    ``best_of`` metrics at the best epoch; checkpoints are kept by their epoch's validation metric (the
    objective, for the best epoch's). A worker group that cannot start fails the run after
    ``controller_failure_limit`` tries instead of waiting forever."""
    storage = resolve(storage)
    return ray.train.torch.TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"config": config.to_dict(), "dataset": dataset,
                           "threads": threads(scaling), "best_of": list(best_of)},
        scaling_config=ray.train.ScalingConfig(num_workers=scaling.workers_per_trial, use_gpu=scaling.use_gpu,
                                               resources_per_worker={"CPU": scaling.cpus_per_worker},
                                               placement_strategy=scaling.placement_strategy),
        torch_config=ray.train.torch.TorchConfig(backend="nccl" if scaling.use_gpu else "gloo"),
        run_config=ray.train.RunConfig(
            name=run_name, storage_path=storage.path, storage_filesystem=None if storage.is_local else storage.fs,
            callbacks=callbacks or [],
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=scaling.num_to_keep, checkpoint_score_attribute=f"valid_{config.metric}",
                checkpoint_score_order="max"),
            failure_config=ray.train.FailureConfig(max_failures=scaling.max_failures,
                                                  controller_failure_limit=scaling.controller_failure_limit)),
    )
