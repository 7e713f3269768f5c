"""Ray Train data-parallel training: every worker runs the core epoch loop on its shard of the data.

The per-worker function is :func:`raysearch.train.fusion_gcn.run_epochs` unchanged for the models that
train data-parallel (``ModelSpec.data_parallel``); the others run their registry trainer on one worker, with the model wrapped by
``ray.train.torch.prepare_model`` (DDP: gloo on CPU, NCCL on GPU) and a reporter that calls
``ray.train.report`` on every rank each epoch (a barrier), attaching the checkpoint on rank 0 only.
Validation covers the whole validation part on every rank, so all ranks report identical metrics.
Every report also names the Ray nodes the run's workers are on (``worker_nodes``), so a search on a
cluster shows where each trial ran. Storage is a local/NFS folder or a bucket (:mod:`raysearch.search.storage`).
"""

from __future__ import annotations

import tempfile
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


class RayReporter:
    """Reports each epoch to Ray Train from every rank, with ``extra`` values; rank 0 attaches the checkpoint."""

    def __init__(self, rank: int, extra: dict[str, Any] | None = None) -> None:
        self.rank = rank
        self.extra = extra or {}

    def __call__(self, metrics: dict[str, float], checkpoint: Callable[[], dict], improved: bool) -> None:
        metrics = {**metrics, **self.extra}
        if self.rank != 0:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(checkpoint(), Path(folder) / CHECKPOINT_FILE)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def worker_nodes() -> str:
    """Ray node ids of all workers of this run, sorted and comma-separated (one all-gather)."""
    node = ray.get_runtime_context().get_node_id()
    if not dist.is_initialized():
        return node
    nodes: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(nodes, node)
    return ",".join(sorted(set(nodes)))


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point: ``loop_config`` holds the config dict, the dataset and the torch threads."""
    torch.set_num_threads(loop_config["threads"])
    config = TrainConfig.from_dict(loop_config["config"])
    dataset: Dataset = loop_config["dataset"]
    context = ray.train.get_context()
    resume = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume = load_checkpoint(Path(folder) / CHECKPOINT_FILE)
    reporter = RayReporter(context.get_world_rank(), {"worker_nodes": worker_nodes()})
    split = split_for(config, dataset)
    if not config.spec.data_parallel:  # one worker, no resume
        config.spec.train(config, dataset, split, reporter)
        return
    run_epochs(config, dataset, split, reporter, ranks=Ranks(context.get_world_rank(), context.get_world_size()),
               wrap=ray.train.torch.prepare_model, resume=resume, device=ray.train.torch.get_device())


def make_trainer(config: TrainConfig, dataset: Dataset, scaling: Scaling, run_name: str, storage: str | Location,
                 callbacks: list | None = None) -> ray.train.torch.TorchTrainer:
    """A ``TorchTrainer`` for one run under ``storage`` (a folder or a bucket URI); checkpoints are kept by
    the validation metric. A worker group that cannot start fails the run after
    ``controller_failure_limit`` tries instead of waiting forever."""
    storage = resolve(storage)
    return ray.train.torch.TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"config": config.to_dict(), "dataset": dataset,
                           "threads": max(1, int(scaling.cpus_per_worker))},
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
