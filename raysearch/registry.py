"""Every model, declared once: its name, what it is, its trainer, its own settings, defaults and pins,
and the interactions it needs.

Pure declarations: nothing here imports torch or a trainer. A spec names its training function as
``"module:function"``, imported on first use, so LightGBM loads only when ``lightgbm`` trains.
:mod:`raysearch.config` reads the specs to route a model's keys; this module never imports it.

Adding a model: its settings class here (if it has keys of its own), its :class:`ModelSpec` in
:data:`MODELS`, its module (a ``train(config, dataset, split, reporter=None) -> Fitted``) and its tests.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any, Mapping

from raysearch.errors import check, check_choice

SIDES = ("users", "items")  # what a model may need interactions for
FUSIONS = ("attention", "mean", "none")  # FusionGCN's attribute fusion; "none" = IDs only
TOWERS = ("linear", "mlp")  # FusionGCN's content tower over the fused fields
PROPAGATIONS = ("full", "sampled")  # FusionGCN's training-step propagation


class Settings:
    """Base of the models' own settings (frozen dataclasses, one comment per field)."""

    def needs(self) -> frozenset[str]:
        """Sides these settings need training interactions for (beyond the spec's own ``needs``)."""
        return frozenset()


@dataclass(frozen=True)
class NoSettings(Settings):
    """A model with no keys of its own."""


@dataclass(frozen=True)
class GCNSettings(Settings):
    """FusionGCN, its ablations, and the ID-only baselines built from its code (mf, lightgcn)."""

    num_layers: int = 3  # graph convolution depth (0 = no graph)
    fusion: str = "attention"  # attribute fields: attention (adaptive weights) | mean (equal weights) | none (IDs only)
    user_tower: str = "linear"  # users' content tower: linear (weighted sum of the fields) | mlp (plus an MLP over them)
    item_tower: str = "linear"  # items' content tower: linear | mlp
    rec_loss: str = "softmax"  # ranking loss: softmax (sampled softmax over the negatives) | bpr
    contrastive_weight: float = 0.1  # lambda in L = L_rec + lambda * L_cl
    temperature: float = 0.2  # InfoNCE temperature tau
    contrastive_pairs: int = 512  # (user, item) pairs of each batch used as InfoNCE in-batch negatives (cost ~ square)
    id_dropout: float = 0.2  # chance an entity's ID embedding is hidden in a step (teaches cold start)
    cold_weight: float = 1.0  # weight of the cold-path ranking loss: attribute view of one side vs graph view of the other
    distill_weight: float = 0.0  # weight of the distillation term: attribute views pulled to their own (fixed) graph views
    user_neighbours: int = 10  # > 0: a user's attribute view adds the mean graph view of its k most similar known
    # users by attributes (ties kept; cosine-weighted), so a cold user borrows its look-alikes' tastes; 0 = off
    item_neighbours: int = 0  # the same for items (measured to hurt item cold start on ML-100K, so off by default)
    propagation: str = "full"  # training steps propagate: full (the whole graph) | sampled (the batch's nodes from
    # their sampled neighbours and a history of the layers below); evaluation always propagates the whole graph
    fanout: int = 10  # propagation=sampled: neighbours drawn per node (all of them for nodes with fewer)
    negative_pool: int = 0  # > 0: each step's negatives are drawn from one pool of this many items (shared negatives)
    sparse_ids: bool = False  # propagation=sampled: ID embeddings get sparse gradients and a lazy Adam (SparseAdam),
    # so a step updates only the rows it touched, not the whole catalogue (needs weight_decay 0)

    def __post_init__(self) -> None:
        check("num_layers", self.num_layers, 0 <= self.num_layers <= 8, "must be in 0..8")
        check("cold_weight", self.cold_weight, self.cold_weight >= 0, "must be >= 0")
        check("distill_weight", self.distill_weight, self.distill_weight >= 0, "must be >= 0")
        check_choice("fusion", self.fusion, FUSIONS)
        check_choice("user_tower", self.user_tower, TOWERS)
        check_choice("item_tower", self.item_tower, TOWERS)
        check_choice("rec_loss", self.rec_loss, ("bpr", "softmax"))
        check_choice("propagation", self.propagation, PROPAGATIONS)
        check("fanout", self.fanout, self.fanout >= 1, "must be >= 1")
        check("negative_pool", self.negative_pool, self.negative_pool >= 0, "must be >= 0 (0: no pool)")
        check("sparse_ids", self.sparse_ids, not self.sparse_ids or self.propagation == "sampled",
              "needs propagation=sampled (a full propagation touches every ID row at every step)")
        check("contrastive_weight", self.contrastive_weight, self.contrastive_weight >= 0, "must be >= 0")
        check("temperature", self.temperature, self.temperature > 0, "must be > 0")
        check("contrastive_pairs", self.contrastive_pairs, self.contrastive_pairs >= 1, "must be >= 1")
        check("id_dropout", self.id_dropout, 0 <= self.id_dropout < 1, "must be in [0, 1)")
        check("contrastive_weight", self.contrastive_weight, self.fusion != "none" or self.contrastive_weight == 0,
              "needs attributes to contrast with: use contrastive_weight=0 with fusion=none")
        check("cold_weight", self.cold_weight, self.fusion != "none" or self.cold_weight == 0,
              "needs attributes for the cold path: use cold_weight=0 with fusion=none")
        check("distill_weight", self.distill_weight, self.fusion != "none" or self.distill_weight == 0,
              "needs attributes to distil into: use distill_weight=0 with fusion=none")
        for key in ("user_neighbours", "item_neighbours"):
            value = getattr(self, key)
            check(key, value, value >= 0, "must be >= 0 (0: no attribute neighbours)")
            check(key, value, self.fusion != "none" or value == 0,
                  f"needs attributes to find neighbours by: use {key}=0 with fusion=none")
            check(key, value, self.propagation == "full" or value == 0,
                  f"needs propagation=full (neighbours read the whole graph's views): use {key}=0 with sampled")

    def needs(self) -> frozenset[str]:
        """IDs only: a user or item without interactions has nothing to be represented by."""
        return frozenset(SIDES) if self.fusion == "none" else frozenset()


@dataclass(frozen=True)
class DeepFMSettings(Settings):
    mlp_dims: tuple[int, ...] = (64, 32)  # hidden widths of the deep part
    id_dropout: float = 0.2  # chance an ID is replaced by the shared "unknown" row in training

    def __post_init__(self) -> None:
        check("mlp_dims", self.mlp_dims, len(self.mlp_dims) > 0 and all(d >= 1 for d in self.mlp_dims),
              "must be a non-empty list of widths >= 1")
        check("id_dropout", self.id_dropout, 0 <= self.id_dropout < 1, "must be in [0, 1)")


@dataclass(frozen=True)
class LightGBMSettings(Settings):
    num_leaves: int = 31  # leaves per tree
    num_trees: int = 500  # most boosting rounds (early-stopped on validation loss)

    def __post_init__(self) -> None:
        check("num_leaves", self.num_leaves, self.num_leaves >= 2, "must be >= 2")
        check("num_trees", self.num_trees, self.num_trees >= 1, "must be >= 1")


@dataclass(frozen=True)
class DUIFSettings(Settings):
    hidden: int = 256  # width of the content tower's hidden layer

    def __post_init__(self) -> None:
        check("hidden", self.hidden, self.hidden >= 1, "must be >= 1")


@dataclass(frozen=True)
class DropoutNetSettings(Settings):
    hidden: tuple[int, ...] = (200, 100)  # widths of each tower's Linear + BatchNorm + tanh layers (the paper's)
    dropout: float = 0.5  # chance a pair's user (and, independently, item) preference input is zeroed in training
    backbone_epochs: int = 20  # epochs of the BPR-MF backbone that gives the warm preference vectors

    def __post_init__(self) -> None:
        check("hidden", self.hidden, len(self.hidden) > 0 and all(d >= 1 for d in self.hidden),
              "must be a non-empty list of widths >= 1")
        check("dropout", self.dropout, 0 <= self.dropout < 1, "must be in [0, 1)")
        check("backbone_epochs", self.backbone_epochs, self.backbone_epochs >= 1, "must be >= 1")


@dataclass(frozen=True)
class CLCRecSettings(Settings):
    hidden: int = 256  # width of the content encoder's hidden layer
    temperature: float = 0.2  # tau of both InfoNCE terms
    contrastive_weight: float = 0.5  # lambda: L = lambda L_content + (1 - lambda) L_rank
    mix_ratio: float = 0.5  # chance a content-side vector in L_rank is its encoding instead of its ID embedding
    norm_weight: float = 0.0  # weight of the mean embedding norm (the paper's regulariser)

    def __post_init__(self) -> None:
        check("hidden", self.hidden, self.hidden >= 1, "must be >= 1")
        check("temperature", self.temperature, self.temperature > 0, "must be > 0")
        check("contrastive_weight", self.contrastive_weight, 0 <= self.contrastive_weight <= 1, "must be in [0, 1]")
        check("mix_ratio", self.mix_ratio, 0 <= self.mix_ratio <= 1, "must be in [0, 1]")
        check("norm_weight", self.norm_weight, self.norm_weight >= 0, "must be >= 0")


@dataclass(frozen=True)
class ContentKNNSettings(Settings):
    neighbours: tuple[int, ...] = (10, 20, 50, 100, 200)  # k tried; the validation part picks one

    def __post_init__(self) -> None:
        check("neighbours", self.neighbours, len(self.neighbours) > 0 and min(self.neighbours) >= 1,
              "must be a non-empty list of k >= 1")


@dataclass(frozen=True)
class ModelSpec:
    """One model. ``defaults`` override the common keys' and the settings' own defaults wherever a config
    is built from user values (``raysearch train``/``tune``/``compare``); ``pins`` are keys the model fixes."""

    name: str
    description: str  # one line, as the README's model table shows it
    trainer: str  # "module:function" of train(config, dataset, split, reporter=None) -> Fitted
    settings: type[Settings] = NoSettings
    defaults: Mapping[str, Any] = field(default_factory=dict)
    pins: Mapping[str, Any] = field(default_factory=dict)
    needs: frozenset[str] = frozenset()  # sides it needs training interactions for, whatever its settings
    data_parallel: bool = False  # trains through FusionGCN's epoch loop: DDP workers, resumable under Ray Train
    mixed: bool = False  # serves the mixed protocol: selects on warm and cold parts at once, both sides cold-capable

    def settings_keys(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.settings))

    def pinned(self, values: Mapping[str, Any]) -> Settings:
        """The settings from ``values`` (the model's own keys) with the pins applied; a value that
        contradicts a pin (neither the pin nor the settings' default) is an error."""
        defaults = {f.name: f.default for f in dataclasses.fields(self.settings)}
        for key, pin in self.pins.items():
            value = values.get(key, pin)
            check(key, value, value in (pin, defaults[key]), f"contradicts model {self.name!r}, which fixes "
                  f"{key}={pin!r}; remove the key or change the model")
        return self.settings(**{**values, **self.pins})

    def train(self, config: Any, dataset: Any, split: Any, reporter: Any = None) -> Any:
        """Train with this model's trainer (imported now); a protocol it cannot serve is a ConfigError."""
        module, _, function = self.trainer.partition(":")
        return getattr(importlib.import_module(module), function)(config.require_scorable(), dataset, split, reporter)


GCN_TRAINER = "raysearch.train.fusion_gcn:train"
ID_ONLY = {"fusion": "none", "id_dropout": 0.0, "contrastive_weight": 0.0, "cold_weight": 0.0,
           "distill_weight": 0.0, "user_neighbours": 0, "item_neighbours": 0}  # no attributes
MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("fusion_gcn",
              "ours (ID + adaptive field fusion → LGConv stack, cold-path ranking loss, cross-view "
              "InfoNCE)", GCN_TRAINER,
              GCNSettings, data_parallel=True, mixed=True),
    ModelSpec("mf", "matrix factorization, BPR (FusionGCN code with no attributes, no graph)", GCN_TRAINER,
              GCNSettings, {"rec_loss": "bpr", "num_negatives": 4}, {**ID_ONLY, "num_layers": 0}, data_parallel=True,
              mixed=True),
    ModelSpec("lightgcn", "LightGCN, BPR (PyG `LGConv` over ID embeddings)", GCN_TRAINER, GCNSettings,
              {"rec_loss": "bpr", "num_negatives": 4}, ID_ONLY, data_parallel=True, mixed=True),
    ModelSpec("deepfm", "DeepFM over IDs + the same attribute fields, BCE vs sampled negatives",
              "raysearch.baselines.deepfm:train", DeepFMSettings,
              {"embedding_dim": 16, "num_negatives": 4, "learning_rate": 0.001, "batch_size": 1024}, mixed=True),
    ModelSpec("autorec", "I-AutoRec for implicit feedback", "raysearch.baselines.autorec:train",
              defaults={"embedding_dim": 256, "learning_rate": 0.001, "weight_decay": 1e-5, "batch_size": 128},
              needs=frozenset(SIDES)),
    ModelSpec("lightgbm", "LightGBM classifier over fields + counts + user–genre affinity",
              "raysearch.baselines.gbdt:train", LightGBMSettings,
              {"learning_rate": 0.1, "num_negatives": 4, "num_trees": 200}),
    ModelSpec("popularity", "training-interaction counts", "raysearch.baselines.popularity:train",
              needs=frozenset({"items"})),
    ModelSpec("dropoutnet",
              "DropoutNet (Volkovs et al. 2017): BPR-MF preferences trained here, then content towers "
              "with preference dropout trained to reproduce the warm scores (MSE)",
              "raysearch.baselines.dropoutnet:train", DropoutNetSettings, {"learning_rate": 0.001, "num_negatives": 4}),
    ModelSpec("clcrec",
              "CLCRec (Wei et al. 2021): content encoder aligned to ID embeddings by InfoNCE, hybrid "
              "ranking InfoNCE",
              "raysearch.baselines.clcrec:train", CLCRecSettings, {"learning_rate": 0.001, "num_negatives": 128}),
    ModelSpec("duif",
              "DUIF-style content tower: the cold side's vector is an MLP over its attributes only, "
              "trained with the sampled softmax (chosen over Heater/ALDI as the simplest learned "
              "content-only model, a floor for what attributes alone give)",
              "raysearch.baselines.duif:train", DUIFSettings, {"learning_rate": 0.001}),
    ModelSpec("content_knn",
              "content-KNN, no learning: a cold item scores the summed attribute cosine similarity of "
              "its k nearest training items that the user interacted with; a cold user scores an item "
              "by the summed similarity of its k nearest warm users who interacted with it; k chosen on"
              " validation",
              "raysearch.baselines.content_knn:train", ContentKNNSettings),
)}


def model_spec(name: str) -> ModelSpec:
    """The spec of model ``name``; an unknown name is a ConfigError listing the models."""
    check_choice("model", name, tuple(MODELS))
    return MODELS[name]
