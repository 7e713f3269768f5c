"""The in-process trainer: the epoch loop :func:`run_epochs` and :func:`fit`, reporting to an injected reporter.

Nothing here knows about Ray: the distributed trainer calls :func:`run_epochs` unchanged with its own
rank, world size, model wrapper and reporter.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch
from torch import nn

from raysearch.checkpoint import make_checkpoint, model_args
from raysearch.config import TrainConfig
from raysearch.data import Dataset
from raysearch.errors import ConfigError, TrainingDiverged
from raysearch.evaluation import Scorer, evaluate, sampled_evaluate
from raysearch.features import field_tensors
from raysearch.graph import bipartite_adjacency
from raysearch.losses import bpr_loss, info_nce, sampled_softmax_loss
from raysearch.model import FusionGCN, Representations
from raysearch.splits import Split, eval_task

RANKING_LOSSES = {"bpr": bpr_loss, "softmax": sampled_softmax_loss}
AUTOCAST_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Reporter(Protocol):
    """Receives each epoch's metrics; ``checkpoint()`` builds the current checkpoint dict on demand."""

    def __call__(self, metrics: dict[str, float], checkpoint: Callable[[], dict], improved: bool) -> None: ...


@dataclass(frozen=True)
class ModelInputs:
    """What every forward pass takes: the training graph and the attribute bags."""

    adjacency: torch.Tensor  # sparse CSR [N, N], symmetric-normalised
    known: torch.Tensor  # bool [N]: node has a training edge
    user_bags: list[tuple[torch.Tensor, torch.Tensor]]
    item_bags: list[tuple[torch.Tensor, torch.Tensor]]

    @classmethod
    def build(cls, dataset: Dataset, train: np.ndarray) -> "ModelInputs":
        adjacency, known = bipartite_adjacency(train, dataset.num_users, dataset.num_items)
        return cls(adjacency, known, field_tensors(dataset.user_fields), field_tensors(dataset.item_fields))

    def to(self, device: torch.device) -> "ModelInputs":
        move = lambda bags: [(t.to(device), o.to(device)) for t, o in bags]  # noqa: E731
        return ModelInputs(self.adjacency.to(device), self.known.to(device), move(self.user_bags), move(self.item_bags))

    @property
    def num_users(self) -> int:
        return len(self.user_bags[0][1])

    def forward(self, model: torch.nn.Module) -> Representations:
        return model(self.adjacency, self.known, self.user_bags, self.item_bags)


@dataclass
class Run:
    """State of :func:`run_epochs` when it stops."""

    model: FusionGCN  # the bare model (not wrapped), at its last epoch
    inputs: ModelInputs
    history: list[dict[str, float]]  # one row of metrics per epoch run
    best: dict | None  # checkpoint of the best epoch run here (None if none improved)


@dataclass(frozen=True)
class FitResult:
    best_epoch: int
    valid: dict[str, float]  # validation metrics of the best epoch
    test: dict[str, float]  # test metrics of the best epoch's model (full ranking and sampled)
    history: list[dict[str, float]]  # one row of metrics per epoch run
    checkpoint: dict  # the best epoch's checkpoint


class NegativeSampler:
    """Uniform negatives from the items allowed in training, redrawn when they hit a training positive."""

    def __init__(self, train: np.ndarray, pool: np.ndarray, num_items: int, device: torch.device | None = None) -> None:
        self.num_items = num_items
        self.pool = torch.as_tensor(pool, dtype=torch.long, device=device)
        self.positives = torch.sort(torch.as_tensor(train[:, 0] * num_items + train[:, 1], device=device)).values

    def sample(self, users: torch.Tensor, generator: torch.Generator, retries: int = 5) -> torch.Tensor:
        items = self.pool[torch.randint(len(self.pool), users.shape, generator=generator).to(self.pool.device)]
        for _ in range(retries):
            keys = users * self.num_items + items
            found = torch.searchsorted(self.positives, keys).clamp(max=len(self.positives) - 1)
            clash = self.positives[found] == keys
            if not clash.any():
                break
            items[clash] = self.pool[torch.randint(len(self.pool), (int(clash.sum()),), generator=generator).to(self.pool.device)]
        return items


def build_model(config: TrainConfig, dataset: Dataset) -> FusionGCN:
    return FusionGCN(**model_args(config, dataset))


def training_items(dataset: Dataset, split: Split) -> np.ndarray:
    """Items a training step may touch: all but the cold items of the split."""
    return np.setdiff1d(np.arange(dataset.num_items), np.concatenate(list(split.cold_items.values())))


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, inputs: ModelInputs,
                train: torch.Tensor, sampler: NegativeSampler, config: TrainConfig, generator: torch.Generator,
                rank: int = 0, world_size: int = 1, scaler: torch.amp.GradScaler | None = None) -> float:
    """One pass over this rank's shard of the shuffled training pairs; returns the mean loss.

    Every rank gets the same number of batches (the remainder of the shuffle is dropped) so DDP
    steps stay in lockstep; the full graph is propagated at every step. With ``config.mixed_precision``
    the forward pass and loss run under ``torch.autocast``; ``scaler`` scales fp16 losses.
    """
    scaler = scaler or torch.amp.GradScaler(train.device.type, enabled=False)
    model.train()
    order = torch.randperm(len(train), generator=generator)
    order = order[: len(order) - len(order) % world_size][rank::world_size]
    num_users = inputs.num_users
    total, steps = 0.0, 0
    for batch in torch.split(order, config.batch_size):
        users, items = train[batch, 0], train[batch, 1]
        negatives = sampler.sample(users.repeat_interleave(config.num_negatives), generator)
        with torch.autocast(train.device.type, dtype=AUTOCAST_DTYPES[config.mixed_precision],
                            enabled=config.mixed_precision != "off"):
            reps = inputs.forward(model)
            user_vec = reps.nodes[users]
            negative_vec = reps.nodes[num_users + negatives].view(len(users), config.num_negatives, -1)
            loss = RANKING_LOSSES[config.rec_loss]((user_vec * reps.nodes[num_users + items]).sum(1),
                                                   torch.einsum("bd,bkd->bk", user_vec, negative_vec))
            if config.contrastive_weight > 0:
                pairs = slice(0, config.contrastive_pairs)
                loss = loss + config.contrastive_weight * cross_view_loss(
                    reps, users[pairs], num_users + items[pairs], config.temperature)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total, steps = total + loss.item(), steps + 1
    return total / max(steps, 1)


def cross_view_loss(reps: Representations, users: torch.Tensor, item_nodes: torch.Tensor,
                    temperature: float) -> torch.Tensor:
    """InfoNCE across views for a batch of (user, positive item) pairs, in-batch negatives.

    A user's graph view must pick out its item's attribute view among the batch's items (and back), and
    a user's attribute view its item's graph view: exactly the scores a cold item or a cold user gets
    at inference, so the attribute encoders learn to stand in for missing interactions.
    """
    return (info_nce(reps.nodes[users], reps.attributes[item_nodes], temperature)
            + info_nce(reps.attributes[users], reps.nodes[item_nodes], temperature))


@torch.no_grad()
def model_scorer(model: FusionGCN, inputs: ModelInputs) -> Scorer:
    """The model's ranking head over one inference-mode forward pass (IDs of known nodes always used)."""
    model.eval()
    reps = inputs.forward(model)
    device = reps.nodes.device
    return lambda users, items: model.score(reps, users.to(device), items.to(device)).cpu()


def run_epochs(config: TrainConfig, dataset: Dataset, split: Split, reporter: Reporter | None = None, *,
               rank: int = 0, world_size: int = 1, wrap: Callable[[nn.Module], nn.Module] = lambda m: m,
               resume: dict | None = None, device: torch.device | None = None) -> Run:
    """The epoch loop shared by :func:`fit` and the distributed trainer.

    Each epoch trains on this rank's shard (``wrap`` may make the model data-parallel), scores the
    whole validation part (so every rank computes the same metrics) and calls ``reporter``; it stops
    after ``config.patience`` epochs without improving ``config.metric``; a non-finite epoch loss raises
    :class:`~raysearch.errors.TrainingDiverged` (naming the epoch and the loss) before that epoch is reported.
    ``resume`` (a checkpoint dict) continues a run from its epoch; ``device`` is where the data goes
    (the model's own device is ``wrap``'s business, e.g. ``ray.train.torch.prepare_model``).
    """
    torch.manual_seed(config.seed)
    model = build_model(config, dataset)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    start, best_epoch, best_value = 0, 0, -math.inf
    if resume is not None:
        model.load_state_dict(resume["state_dict"])
        optimizer.load_state_dict(resume["optimizer"])
        start, best_epoch, best_value = resume["epoch"], resume["metrics"]["best_epoch"], resume["metrics"]["best_value"]
    generator = torch.Generator().manual_seed(config.seed + start)
    trained = wrap(model)
    device = device or torch.device("cpu")
    if config.mixed_precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"mixed_precision=fp16 needs a CUDA device (training runs on {device.type}); "
                          "use bf16 or off")
    scaler = torch.amp.GradScaler(device.type, enabled=config.mixed_precision == "fp16")
    inputs = ModelInputs.build(dataset, split.train).to(device)
    train = torch.as_tensor(split.train, dtype=torch.long, device=device)
    sampler = NegativeSampler(split.train, training_items(dataset, split), dataset.num_items, device)
    valid_task = eval_task(split, "valid")
    run = Run(model, inputs, [], None)
    for epoch in range(start + 1, config.epochs + 1):
        started = time.perf_counter()
        loss = train_epoch(trained, optimizer, inputs, train, sampler, config, generator, rank, world_size, scaler)
        if not math.isfinite(loss):
            raise TrainingDiverged(f"training diverged at epoch {epoch}: the mean training loss is {loss} (try a "
                                   "lower learning_rate or contrastive_weight, or a higher temperature)")
        seconds = time.perf_counter() - started
        valid = evaluate(model_scorer(model, inputs), valid_task, dataset.num_items, config.topk,
                         config.eval_batch_users)
        improved = valid[config.metric] > best_value
        if improved:
            best_epoch, best_value = epoch, valid[config.metric]
        metrics = {"epoch": epoch, "loss": loss, "epoch_seconds": seconds,
                   **{f"valid_{k}": v for k, v in valid.items()}, "best_epoch": best_epoch, "best_value": best_value}
        run.history.append(metrics)
        snapshot = lambda: make_checkpoint(model, config, dataset, train, epoch, metrics, optimizer)  # noqa: E731
        if improved:
            run.best = snapshot()
        if reporter is not None:
            reporter(metrics, (lambda: run.best) if improved else snapshot, improved)
        if epoch - best_epoch >= config.patience:
            break
    return run


def fit(config: TrainConfig, dataset: Dataset, split: Split, reporter: Reporter | None = None) -> FitResult:
    """Train in-process with early stopping on ``config.metric``, then score the best model on test."""
    run = run_epochs(config, dataset, split, reporter)
    if run.best is None:
        raise TrainingDiverged(f"training produced no finite validation {config.metric} in {len(run.history)} epochs")
    run.model.load_state_dict(run.best["state_dict"])
    test = test_metrics(run.model, run.inputs, dataset, split, config)
    valid = {k.removeprefix("valid_"): v for k, v in run.best["metrics"].items() if k.startswith("valid_")}
    return FitResult(run.best["epoch"], valid, test, run.history, run.best)


def test_metrics(model: FusionGCN, inputs: ModelInputs, dataset: Dataset, split: Split,
                 config: TrainConfig) -> dict[str, float]:
    """Full-ranking and sampled (1 positive + 99 negatives) metrics on the test part."""
    scorer = model_scorer(model, inputs)
    task = eval_task(split, "test")
    return {**evaluate(scorer, task, dataset.num_items, config.topk, config.eval_batch_users),
            **sampled_evaluate(scorer, task, dataset.interactions, dataset.num_items, config.topk, config.seed)}
