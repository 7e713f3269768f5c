"""The in-process trainer: epoch functions plus :func:`fit`, with progress reported to an injected reporter.

Nothing here knows about Ray: the distributed trainer calls the same :func:`train_epoch` and
:func:`evaluate` with its own rank, world size and reporter.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch

from raysearch.checkpoint import make_checkpoint, model_args
from raysearch.config import TrainConfig
from raysearch.data import Dataset
from raysearch.features import field_tensors
from raysearch.graph import bipartite_adjacency
from raysearch.losses import bpr_loss, info_nce
from raysearch.metrics import add_sums, ranking_sums, sampled_sums, top_hits
from raysearch.model import FusionGCN, Representations
from raysearch.splits import EvalTask, Split, eval_task


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

    def forward(self, model: torch.nn.Module) -> Representations:
        return model(self.adjacency, self.known, self.user_bags, self.item_bags)


@dataclass(frozen=True)
class FitResult:
    best_epoch: int
    valid: dict[str, float]  # validation metrics of the best epoch
    test: dict[str, float]  # test metrics of the best epoch's model (full ranking and sampled)
    history: list[dict[str, float]]  # one row of metrics per epoch run
    checkpoint: dict  # the best epoch's checkpoint


class NegativeSampler:
    """Uniform negatives from the items allowed in training, redrawn when they hit a training positive."""

    def __init__(self, train: np.ndarray, pool: np.ndarray, num_items: int) -> None:
        self.num_items = num_items
        self.pool = torch.as_tensor(pool, dtype=torch.long)
        self.positives = torch.sort(torch.as_tensor(train[:, 0] * num_items + train[:, 1])).values

    def sample(self, users: torch.Tensor, generator: torch.Generator, retries: int = 5) -> torch.Tensor:
        items = self.pool[torch.randint(len(self.pool), users.shape, generator=generator)]
        for _ in range(retries):
            keys = users * self.num_items + items
            found = torch.searchsorted(self.positives, keys).clamp(max=len(self.positives) - 1)
            clash = self.positives[found] == keys
            if not clash.any():
                break
            items[clash] = self.pool[torch.randint(len(self.pool), (int(clash.sum()),), generator=generator)]
        return items


def build_model(config: TrainConfig, dataset: Dataset) -> FusionGCN:
    return FusionGCN(**model_args(config, dataset))


def training_items(dataset: Dataset, split: Split) -> np.ndarray:
    """Items a training step may touch: all but the cold items of the split."""
    return np.setdiff1d(np.arange(dataset.num_items), np.concatenate(list(split.cold_items.values())))


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, inputs: ModelInputs,
                train: torch.Tensor, sampler: NegativeSampler, config: TrainConfig, generator: torch.Generator,
                rank: int = 0, world_size: int = 1) -> float:
    """One pass over this rank's shard of the shuffled training pairs; returns the mean loss.

    Every rank gets the same number of batches (the remainder of the shuffle is dropped) so DDP
    steps stay in lockstep; the full graph is propagated at every step.
    """
    model.train()
    order = torch.randperm(len(train), generator=generator)
    order = order[: len(order) - len(order) % world_size][rank::world_size]
    num_users = len(inputs.user_bags[0][1])
    total, steps = 0.0, 0
    for batch in torch.split(order, config.batch_size):
        users, items = train[batch, 0], train[batch, 1]
        negatives = sampler.sample(users, generator)
        reps = inputs.forward(model)
        user_vec = reps.nodes[users]
        loss = bpr_loss((user_vec * reps.nodes[num_users + items]).sum(1),
                        (user_vec * reps.nodes[num_users + negatives]).sum(1))
        if config.contrastive_weight > 0:
            pairs = slice(0, config.contrastive_pairs)
            loss = loss + config.contrastive_weight * cross_view_loss(
                reps, users[pairs], num_users + items[pairs], config.temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
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
def representations(model: FusionGCN, inputs: ModelInputs) -> Representations:
    """Inference-mode forward pass (IDs of known nodes always used)."""
    model.eval()
    return inputs.forward(model)


@torch.no_grad()
def evaluate(model: FusionGCN, reps: Representations, task: EvalTask, ks: tuple[int, ...],
             chunk_users: int) -> dict[str, float]:
    """Full-ranking metrics of ``task``, averaged over its users, scoring ``chunk_users`` users at a time."""
    items = torch.as_tensor(np.arange(model.num_items) if task.candidates is None else task.candidates)
    column = torch.full((model.num_items,), -1, dtype=torch.long)
    column[items] = torch.arange(len(items))
    users = torch.as_tensor(task.users)
    positives = _rows_and_columns(task.positives, users, column)
    excluded = _rows_and_columns(task.excluded, users, column)
    sums: dict[str, float] = {}
    for start in range(0, len(users), chunk_users):
        stop = min(start + chunk_users, len(users))
        scores = model.score(reps, users[start:stop], items)
        scores[_chunk_index(excluded, start, stop)] = -math.inf
        positive = torch.zeros_like(scores, dtype=torch.bool)
        positive[_chunk_index(positives, start, stop)] = True
        hits = top_hits(scores, positive, max(ks))
        sums = add_sums(sums, ranking_sums(hits, positive.sum(1), ks))
    return {k: v / len(users) for k, v in sums.items()}


@torch.no_grad()
def sampled_evaluate(model: FusionGCN, reps: Representations, task: EvalTask, known: np.ndarray,
                     ks: tuple[int, ...], seed: int, num_negatives: int = 99) -> dict[str, float]:
    """Sampled protocol: per user one random positive of the part vs ``num_negatives`` random candidates
    the user never interacted with (``known``: all of the dataset's pairs; drawn with replacement when
    fewer remain)."""
    rng = np.random.default_rng(seed)
    candidates = np.arange(model.num_items) if task.candidates is None else task.candidates
    by_user = np.split(known[np.argsort(known[:, 0], kind="stable"), 1],
                       np.searchsorted(np.sort(known[:, 0]), np.arange(1, model.num_users)))
    part = task.positives[np.argsort(task.positives[:, 0], kind="stable")]
    starts = np.searchsorted(part[:, 0], task.users)
    counts = np.searchsorted(part[:, 0], task.users, side="right") - starts
    picked = part[starts + rng.integers(0, counts), 1]
    allowed = [np.setdiff1d(candidates, by_user[u]) for u in task.users]
    scored = np.array([len(a) > 0 for a in allowed])  # a user who had every candidate cannot be scored
    if not scored.any():
        return {}
    negatives = np.stack([rng.choice(a, num_negatives, replace=len(a) < num_negatives)
                          for a, ok in zip(allowed, scored) if ok])
    users, picked = torch.as_tensor(task.users[scored]), picked[scored]
    user_vec = reps.nodes[users]
    item_rows = reps.nodes[model.num_users:]
    positive_scores = (user_vec * item_rows[torch.as_tensor(picked)]).sum(1)
    negative_scores = torch.einsum("bd,bnd->bn", user_vec, item_rows[torch.as_tensor(negatives)])
    return {k: v / len(users) for k, v in sampled_sums(positive_scores, negative_scores, ks).items()}


def _rows_and_columns(pairs: np.ndarray, users: torch.Tensor, column: torch.Tensor) -> torch.Tensor:
    """(row in ``users``, candidate column) of the pairs whose user is scored and item is a candidate,
    sorted by row: int [n, 2]."""
    pairs = torch.as_tensor(pairs, dtype=torch.long).reshape(-1, 2)
    rows = torch.searchsorted(users, pairs[:, 0].contiguous()).clamp(max=len(users) - 1)
    cols = column[pairs[:, 1]]
    keep = (users[rows] == pairs[:, 0]) & (cols >= 0)
    found = torch.stack([rows[keep], cols[keep]], 1)
    return found[torch.argsort(found[:, 0], stable=True)]


def _chunk_index(pairs: torch.Tensor, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    lo, hi = torch.searchsorted(pairs[:, 0].contiguous(), torch.tensor([start, stop])).tolist()
    return pairs[lo:hi, 0] - start, pairs[lo:hi, 1]


def fit(config: TrainConfig, dataset: Dataset, split: Split, reporter: Reporter | None = None) -> FitResult:
    """Train with early stopping on ``config.metric`` (validation), then score the best model on test."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    inputs = ModelInputs.build(dataset, split.train)
    train = torch.as_tensor(split.train, dtype=torch.long)
    model = build_model(config, dataset)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    sampler = NegativeSampler(split.train, training_items(dataset, split), dataset.num_items)
    valid_task = eval_task(split, "valid")
    history: list[dict[str, float]] = []
    best: dict = {}
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        loss = train_epoch(model, optimizer, inputs, train, sampler, config, generator)
        seconds = time.perf_counter() - started
        valid = evaluate(model, representations(model, inputs), valid_task, config.topk, config.eval_batch_users)
        metrics = {"epoch": epoch, "loss": loss, "epoch_seconds": seconds,
                   **{f"valid_{k}": v for k, v in valid.items()}}
        history.append(metrics)
        improved = not best or valid[config.metric] > best["metrics"][f"valid_{config.metric}"]
        snapshot = lambda: make_checkpoint(model, config, dataset, train, epoch, metrics, optimizer)  # noqa: E731
        if improved:
            best = snapshot()
        if reporter is not None:
            reporter(metrics, (lambda: best) if improved else snapshot, improved)
        if epoch - best["epoch"] >= config.patience or not math.isfinite(loss):
            break
    model.load_state_dict(best["state_dict"])
    test = test_metrics(model, inputs, dataset, split, config)
    valid = {k.removeprefix("valid_"): v for k, v in best["metrics"].items() if k.startswith("valid_")}
    return FitResult(best["epoch"], valid, test, history, best)


def test_metrics(model: FusionGCN, inputs: ModelInputs, dataset: Dataset, split: Split,
                 config: TrainConfig) -> dict[str, float]:
    """Full-ranking and sampled (1 positive + 99 negatives) metrics on the test part."""
    reps = representations(model, inputs)
    task = eval_task(split, "test")
    return {**evaluate(model, reps, task, config.topk, config.eval_batch_users),
            **sampled_evaluate(model, reps, task, dataset.interactions, config.topk, config.seed)}
