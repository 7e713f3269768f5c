"""FusionGCN's training (also ``mf`` and ``lightgcn``, the same code with attributes, ID dropout and the
contrastive term pinned off): its epoch, run through the shared early-stopping loop by :func:`run_epochs`.

Nothing here knows about Ray: the distributed trainer calls :func:`run_epochs` unchanged with its own
ranks, model wrapper and reporter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raysearch.config import TrainConfig
from raysearch.data.movielens import Dataset
from raysearch.data.protocols import Split
from raysearch.errors import ConfigError
from raysearch.evaluation.scoring import Scorer
from raysearch.model.fusion_gcn import FusionGCN, Representations
from raysearch.model.losses import bpr_loss, info_nce, sampled_softmax_loss
from raysearch.registry import GCNSettings
from raysearch.train.checkpoint import make_checkpoint, model_args
from raysearch.train.inputs import History, ModelInputs, NegativeSampler, training_items
from raysearch.train.loop import EpochLoss, Fitted, Progress, Reporter, early_stopping, sgd_epoch
from raysearch.train.optimizers import Optimizer, Optimizers
from raysearch.train.ranks import Ranks

RANKING_LOSSES = {"bpr": bpr_loss, "softmax": sampled_softmax_loss}
AUTOCAST_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
DIVERGED_HINT = "try a lower learning_rate or contrastive_weight, or a higher temperature"


@dataclass
class Run:
    """State of :func:`run_epochs` when it stops."""

    model: FusionGCN  # the bare model (not wrapped), at its last epoch
    inputs: ModelInputs
    progress: Progress


def build_model(config: TrainConfig, dataset: Dataset) -> FusionGCN:
    return FusionGCN(**model_args(config, dataset))


def make_optimizer(model: FusionGCN, config: TrainConfig) -> Optimizer:
    """Adam over every parameter; with ``sparse_ids``, SparseAdam (a lazy Adam: moments and rows move only where a
    step has gradients) over the ID tables beside Adam over the rest, so a sampled step's update costs what it
    touched rather than the catalogue."""
    if not config.settings.sparse_ids:
        return torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    ids = [model.user_id.weight, model.item_id.weight]
    rest = [p for name, p in model.named_parameters() if name not in ("user_id.weight", "item_id.weight")]
    return Optimizers(torch.optim.Adam(rest, lr=config.learning_rate),
                      torch.optim.SparseAdam(ids, lr=config.learning_rate))


def train_epoch(model: torch.nn.Module, optimizer: Optimizer, inputs: ModelInputs,
                train: torch.Tensor, sampler: NegativeSampler, config: TrainConfig, generator: torch.Generator,
                ranks: Ranks = Ranks(), scaler: torch.amp.GradScaler | None = None) -> EpochLoss:
    """One pass over this rank's shard of the training pairs, shuffled by its own ``generator``.

    Each step takes ``batch_size // ranks.size`` pairs (and as many InfoNCE pairs of
    ``contrastive_pairs``) on every rank, so the global batch and the steps per epoch do not depend on
    the number of ranks. Each step propagates the full graph, or with ``propagation: sampled`` only the step's
    users and candidate items from their sampled neighbours and a history refreshed at the epoch's start
    (:func:`step_forward`); ``negative_pool`` > 0 draws each user's negatives from one pool of that many items per
    step (PinSage's shared negatives), which bounds the items a sampled step touches. With ``config.mixed_precision``
    the forward pass and loss run under ``torch.autocast``; ``scaler`` scales fp16 losses.
    """
    own = config.settings
    shard = ranks.shard(len(train))
    order = shard[torch.randperm(len(shard), generator=generator)]
    num_users = inputs.num_users

    history = History(model, inputs) if own.propagation == "sampled" else None

    def loss(batch: torch.Tensor) -> torch.Tensor:
        users, items = train[batch, 0], train[batch, 1]
        pool = sampler.draw((own.negative_pool,), generator) if own.negative_pool else None
        negatives = sampler.sample(users.repeat_interleave(config.num_negatives), generator, pool=pool)
        candidates = num_users + torch.cat([items.unsqueeze(1), negatives.view(len(users), -1)], 1)
        with torch.autocast(train.device.type, dtype=AUTOCAST_DTYPES[config.mixed_precision],
                            enabled=config.mixed_precision != "off"):
            reps, row = step_forward(model, inputs, own, torch.cat([users, candidates.reshape(-1)]), history,
                                     generator)
            users, candidates = row(users), row(candidates)
            value = ranking_loss(own.rec_loss, rows(reps.nodes, users), rows(reps.nodes, candidates))
            if own.cold_weight > 0:
                value = value + own.cold_weight * cold_path_loss(own.rec_loss, reps, users, candidates)
            pairs = slice(0, ranks.share(own.contrastive_pairs))
            if own.contrastive_weight > 0:
                value = value + own.contrastive_weight * cross_view_loss(
                    reps, users[pairs], candidates[pairs, 0], own.temperature)
            if own.distill_weight > 0:
                value = value + own.distill_weight * distill_loss(
                    reps, users[pairs], candidates[pairs, 0], own.temperature)
        return value

    return sgd_epoch(model, optimizer, torch.split(order, ranks.share(config.batch_size)), loss, scaler)


def step_forward(model: torch.nn.Module, inputs: ModelInputs, own: GCNSettings, seeds: torch.Tensor,
                 history: History | None, generator: torch.Generator
                 ) -> tuple[Representations, Callable[[torch.Tensor], torch.Tensor]]:
    """A training step's representations and the map from node ids to their rows: the whole graph's (rows are
    the ids), or with ``propagation: sampled`` those of the node ids ``seeds`` alone, from their sampled neighbours
    and ``history``, at a cost that depends on the batch and ``fanout``, not on the size of the graph."""
    if history is None:
        return inputs.forward(model), lambda ids: ids
    reps, nodes = inputs.sampled_forward(model, seeds, own.fanout, history, generator)
    return reps, lambda ids: torch.searchsorted(nodes, ids)


def rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` as an embedding lookup: its backward adds up the gradient rows faster on CPU than advanced
    indexing's ``index_put``, and uses more than one thread."""
    return F.embedding(index, table)


def ranking_loss(name: str, users: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """``RANKING_LOSSES[name]`` of user vectors [B, d] over candidates [B, 1 + K, d], the positive first."""
    scores = torch.bmm(candidates, users.unsqueeze(2)).squeeze(2)
    return RANKING_LOSSES[name](scores[:, 0], scores[:, 1:])


def cold_path_loss(name: str, reps: Representations, users: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """The ranking loss of the batch's pairs as a cold item and a cold user get them: the items' attribute view
    against the users' graph view, and the users' attribute view against the items' graph view.

    ID dropout alone trains the attribute path on a fifth of the nodes of a step; this trains it on every pair,
    with the very scores the cold protocols rank by.
    """
    return (ranking_loss(name, rows(reps.nodes, users), rows(reps.attributes, candidates))
            + ranking_loss(name, rows(reps.attributes, users), rows(reps.nodes, candidates)))


def cross_view_loss(reps: Representations, users: torch.Tensor, item_nodes: torch.Tensor,
                    temperature: float) -> torch.Tensor:
    """InfoNCE across views for a batch of (user, positive item) pairs, in-batch negatives.

    A user's graph view must pick out its item's attribute view among the batch's items (and back), and
    a user's attribute view its item's graph view: exactly the scores a cold item or a cold user gets
    at inference, so the attribute encoders learn to stand in for missing interactions.
    """
    return (info_nce(rows(reps.nodes, users), rows(reps.attributes, item_nodes), temperature)
            + info_nce(rows(reps.attributes, users), rows(reps.nodes, item_nodes), temperature))


def distill_loss(reps: Representations, users: torch.Tensor, item_nodes: torch.Tensor,
                 temperature: float) -> torch.Tensor:
    """The graph view distilled into the attribute view: each distinct user (and item) of the batch must pick out
    its own graph view, held fixed (a stop-gradient teacher, as in DropoutNet and ALDI), among the others'
    by its attribute view (InfoNCE, the distinct entities as negatives, so no entity is its own negative)."""
    return sum(info_nce(rows(reps.attributes, nodes), rows(reps.nodes, nodes).detach(), temperature)
               for nodes in (torch.unique(users), torch.unique(item_nodes)))


@torch.no_grad()
def model_scorer(model: FusionGCN, inputs: ModelInputs) -> Scorer:
    """The model's ranking head over one inference-mode forward pass (IDs of known nodes always used)."""
    model.eval()
    reps = inputs.forward(model)
    device = reps.nodes.device
    return lambda users, items: model.score(reps, users.to(device), items.to(device)).cpu()


def run_epochs(config: TrainConfig, dataset: Dataset, split: Split, reporter: Reporter | None = None, *,
               ranks: Ranks = Ranks(), wrap: Callable[[nn.Module], nn.Module] = lambda m: m,
               resume: dict | None = None, device: torch.device | None = None) -> Run:
    """FusionGCN through :func:`~raysearch.train.loop.early_stopping`, in-process or on a Ray Train worker.

    Each epoch trains on this rank's shard (``wrap`` may make the model data-parallel); every rank
    initialises the same model, then draws its own negatives, shuffles and ID-dropout masks from
    ``ranks.seed(config.seed)``. Checkpoints are :func:`~raysearch.train.checkpoint.make_checkpoint`
    dicts with the optimizer state. ``resume`` (such a checkpoint) continues a run from its epoch;
    ``device`` is where the data goes (the model's own device is ``wrap``'s business, e.g.
    ``ray.train.torch.prepare_model``).
    """
    torch.manual_seed(config.seed)
    model = build_model(config, dataset)
    if ranks.rank:
        torch.manual_seed(ranks.seed(config.seed))  # ID dropout draws from torch's global stream
    optimizer = make_optimizer(model, config)
    progress = Progress()
    if resume is not None:
        model.load_state_dict(resume["state_dict"])
        optimizer.load_state_dict(resume["optimizer"])
        metrics = resume["metrics"]
        progress = Progress(resume["epoch"], metrics["best_epoch"], metrics["best_value"], metrics.get("train_steps", 0))
    generator = torch.Generator().manual_seed(ranks.seed(config.seed) + progress.epoch)
    trained = wrap(model)
    device = device or torch.device("cpu")
    if config.mixed_precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"mixed_precision=fp16 needs a CUDA device (training runs on {device.type}); "
                          "use bf16 or off")
    scaler = torch.amp.GradScaler(device.type, enabled=config.mixed_precision == "fp16")
    own = config.settings
    inputs = ModelInputs.build(dataset, split.train, (own.user_neighbours, own.item_neighbours)).to(device)
    train = torch.as_tensor(split.train, dtype=torch.long, device=device)
    sampler = NegativeSampler(split.train, training_items(dataset, split), dataset.num_items, device)
    progress = early_stopping(
        config, dataset, split,
        lambda: train_epoch(trained, optimizer, inputs, train, sampler, config, generator, ranks, scaler),
        lambda: model_scorer(model, inputs),
        lambda epoch, metrics: make_checkpoint(model, config, dataset, train, epoch, metrics, optimizer),
        reporter, hint=DIVERGED_HINT, progress=progress, ranks=ranks)
    return Run(model, inputs, progress)


def train(config: TrainConfig, dataset: Dataset, split: Split, reporter: Reporter | None = None) -> Fitted:
    """The registry's trainer of the FusionGCN family: the best epoch's model, its scorer and fusion weights."""
    run = run_epochs(config, dataset, split, reporter)
    best = run.progress.best_checkpoint(config.metric)
    run.model.load_state_dict(best["state_dict"])
    return Fitted(model_scorer(run.model, run.inputs), best["epoch"], run.progress.history, best,
                  fusion_weights(run.model, run.inputs) if run.model.fusions else {})


@torch.no_grad()
def fusion_weights(model: FusionGCN, inputs: ModelInputs) -> dict[str, np.ndarray]:
    """Per-entity attention weights over attribute fields: ``user`` [U, F_u] and ``item`` [I, F_i]."""
    model.eval()
    reps = inputs.forward(model)
    return {"user": reps.user_weights.cpu().numpy(), "item": reps.item_weights.cpu().numpy()}
