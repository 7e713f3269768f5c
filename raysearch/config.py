"""The typed run configuration: the single source of truth for a training run."""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from raysearch.errors import ConfigError

DATASETS = ("ml-100k", "ml-1m")
PROTOCOLS = ("warm", "item_cold", "user_cold")
METRIC_NAMES = ("recall", "ndcg", "mrr", "hit")
PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")  # Ray placement-group strategies
MODELS = ("fusion_gcn", "mf", "lightgcn", "deepfm", "autorec", "lightgbm", "popularity")
FUSIONS = ("attention", "mean", "none")
# Settings that define a baseline built from the FusionGCN code: MF and LightGCN are ID-only, without
# ID dropout or the (attribute) contrastive term; MF also has no graph.
# Baselines with their own training (not data-parallel): one Ray Train worker per trial.
SINGLE_WORKER_MODELS = ("deepfm", "autorec", "lightgbm", "popularity")
MODEL_PINS: dict[str, dict[str, Any]] = {
    "mf": {"fusion": "none", "num_layers": 0, "id_dropout": 0.0, "contrastive_weight": 0.0},
    "lightgcn": {"fusion": "none", "id_dropout": 0.0, "contrastive_weight": 0.0},
}


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run; search spaces and ``--set`` map onto these fields."""

    model: str = "fusion_gcn"  # fusion_gcn (ours) | baselines: mf | lightgcn | deepfm | autorec | lightgbm | popularity
    dataset: str = "ml-100k"  # ml-100k | ml-1m
    split: str = "warm"  # evaluation protocol: warm | item_cold | user_cold
    split_file: str | None = None  # JSON split file used instead of drawing one (protocol = `split`); made absolute
    rating_threshold: float = 0.0  # ratings >= this count as positives (0 keeps every rating)
    embedding_dim: int = 64  # width of ID, field and graph embeddings
    num_layers: int = 3  # graph convolution depth (0 = no graph)
    fusion: str = "attention"  # attribute fields: attention (adaptive weights) | mean (equal weights) | none (IDs only)
    learning_rate: float = 0.005  # Adam step size
    weight_decay: float = 0.0  # Adam L2 penalty on all parameters
    rec_loss: str = "softmax"  # ranking loss: softmax (sampled softmax over the negatives) | bpr
    num_negatives: int = 32  # sampled negatives per training interaction
    contrastive_weight: float = 0.1  # lambda in L = L_rec + lambda * L_cl
    temperature: float = 0.2  # InfoNCE temperature tau
    contrastive_pairs: int = 512  # (user, item) pairs of each batch used as InfoNCE in-batch negatives (cost ~ square)
    id_dropout: float = 0.2  # chance an entity's ID embedding is hidden in a step (teaches cold start)
    text_buckets: int = 1024  # hash buckets for title words
    batch_size: int = 2048  # training interactions per step
    epochs: int = 100  # maximum number of epochs
    patience: int = 10  # epochs without validation improvement before stopping early
    metric: str = "ndcg@10"  # validation metric for early stopping and model selection (higher is better)
    topk: tuple[int, ...] = (10, 20)  # cut-offs K reported for every metric
    eval_batch_users: int = 512  # users scored per chunk during evaluation (bounds memory)
    seed: int = 42  # seeds the split, initialisation, negatives and batches
    mixed_precision: str = "off"  # autocast in training steps: off | bf16 (CPU or CUDA) | fp16 (CUDA, loss scaling)
    mlp_dims: tuple[int, ...] = (64, 32)  # deepfm: hidden widths of the deep part
    num_leaves: int = 31  # lightgbm: leaves per tree
    num_trees: int = 500  # lightgbm: most boosting rounds (early-stopped on validation loss)

    def __post_init__(self) -> None:
        _check_choice("model", self.model, MODELS)
        self._apply_pins()
        _check_choice("dataset", self.dataset, DATASETS)
        _check_choice("fusion", self.fusion, FUSIONS)
        _check_choice("split", self.split, PROTOCOLS)
        _check_choice("rec_loss", self.rec_loss, ("bpr", "softmax"))
        _check_choice("mixed_precision", self.mixed_precision, ("off", "bf16", "fp16"))
        if self.split_file is not None:
            check("split_file", self.split_file, bool(self.split_file.strip()), "must be a file path or null")
            object.__setattr__(self, "split_file", os.path.abspath(os.path.expanduser(self.split_file)))
        for name in ("embedding_dim", "batch_size", "contrastive_pairs", "num_negatives", "epochs", "patience", "eval_batch_users", "text_buckets"):
            check(name, getattr(self, name), getattr(self, name) >= 1, "must be >= 1")
        check("num_layers", self.num_layers, 0 <= self.num_layers <= 8, "must be in 0..8")
        check("learning_rate", self.learning_rate, 0 < self.learning_rate <= 1e3,
              "must be in (0, 1000]")  # Adam's float32 step overflows near 1e38
        check("temperature", self.temperature, self.temperature > 0, "must be > 0")
        check("weight_decay", self.weight_decay, self.weight_decay >= 0, "must be >= 0")
        check("contrastive_weight", self.contrastive_weight, self.contrastive_weight >= 0, "must be >= 0")
        check("id_dropout", self.id_dropout, 0 <= self.id_dropout < 1, "must be in [0, 1)")
        check("contrastive_weight", self.contrastive_weight, self.fusion != "none" or self.contrastive_weight == 0,
              "needs attributes to contrast with: use contrastive_weight=0 with fusion=none")
        check("mlp_dims", self.mlp_dims, all(d >= 1 for d in self.mlp_dims), "must be widths >= 1")
        check("num_leaves", self.num_leaves, self.num_leaves >= 2, "must be >= 2")
        check("num_trees", self.num_trees, self.num_trees >= 1, "must be >= 1")
        check("topk", self.topk, len(self.topk) > 0 and min(self.topk) >= 1, "must be a non-empty list of K >= 1")
        name, _, k = self.metric.partition("@")
        check("metric", self.metric, name in METRIC_NAMES and k in {str(t) for t in self.topk},
               f"must be one of {'|'.join(METRIC_NAMES)} @ a K in topk {list(self.topk)}")

    def _apply_pins(self) -> None:
        """Set the fields a baseline fixes; a non-default value that contradicts one is an error."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for key, pinned in MODEL_PINS.get(self.model, {}).items():
            value = getattr(self, key)
            check(key, value, value in (pinned, defaults[key]),
                  f"contradicts model {self.model!r}, which fixes {key}={pinned!r}; remove the key or change the model")
            object.__setattr__(self, key, pinned)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "TrainConfig":
        """Build a config from plain values, naming ``source`` and the key in any error."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: expected a mapping of config keys, got {type(values).__name__}")
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"{source}: unknown key {key!r} (value {value!r}); known keys: {', '.join(sorted(known))}")
            kwargs[key] = coerce(hints[key], value, f"{source}: key {key!r}")
        try:
            return cls(**kwargs)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        """Load a config saved by :meth:`to_yaml` (or written by hand)."""
        path = Path(path)
        values = read_yaml(path, "config")
        return cls.from_dict(resolve_split_file(values or {}, path.parent), source=str(path))

    def with_overrides(self, assignments: list[str], source: str = "--set") -> "TrainConfig":
        """Apply ``key=value`` strings (values parsed as YAML scalars) on top of this config."""
        values = self.to_dict()
        for item in assignments:
            key, sep, raw = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"{source}: expected key=value, got {item!r}")
            where = f"{source}: value {raw!r} for key {key!r}"
            values[key.strip()] = parse_yaml(raw, where) if raw.strip() else raw
        return TrainConfig.from_dict(values, source=source)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (lists instead of tuples), suitable for YAML and checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


@dataclass(frozen=True)
class Scaling:
    """How one training run spreads over Ray Train workers (the ``resources`` of a search space)."""

    workers_per_trial: int = 1  # Ray Train DDP workers per run
    cpus_per_worker: float = 1.0  # logical CPUs reserved per worker; torch threads = max(1, floor(cpus))
    use_gpu: bool = False  # one GPU per worker, NCCL backend
    placement_strategy: str = "PACK"  # a run's workers on nodes: PACK (fewest nodes) | SPREAD | STRICT_PACK | STRICT_SPREAD
    num_to_keep: int = 2  # checkpoints kept per run, best by the validation metric
    max_failures: int = 1  # worker failures survived by restarting from the last checkpoint
    controller_failure_limit: int = 3  # failed worker-group starts before the run errors instead of waiting

    def __post_init__(self) -> None:
        check("workers_per_trial", self.workers_per_trial, self.workers_per_trial >= 1, "must be >= 1")
        _check_choice("placement_strategy", self.placement_strategy, PLACEMENT_STRATEGIES)
        check("cpus_per_worker", self.cpus_per_worker, self.cpus_per_worker > 0, "must be > 0")
        check("num_to_keep", self.num_to_keep, self.num_to_keep >= 1, "must be >= 1")
        check("max_failures", self.max_failures, self.max_failures >= 0, "must be >= 0")
        check("controller_failure_limit", self.controller_failure_limit, self.controller_failure_limit >= 0,
               "must be >= 0")


def coerce(hint: Any, value: Any, where: str) -> Any:
    """Check ``value`` against a field type hint; ints and numeric strings are accepted for floats,
    lists for tuples."""
    if typing.get_origin(hint) is tuple:
        (item_type, _) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list of {item_type.__name__}, got {value!r}")
        return tuple(coerce(item_type, v, where) for v in value)
    if hint is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:  # YAML 1.1 reads "1e-3" (no dot) as a string
            value = float(value)
        except (ValueError, OverflowError):
            pass
    if not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {type_name(hint)}, got {value!r} ({type(value).__name__})")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    if isinstance(value, int) and not -2**63 <= value < 2**63:  # what numpy and torch can hold
        raise ConfigError(f"{where}: {value!r} is out of the 64-bit integer range")
    return value


def read_yaml(path: Path, what: str) -> Any:
    """The plain data of a YAML file; a missing, unreadable or malformed file is a ConfigError naming it."""
    if not path.is_file():
        raise ConfigError(f"{path}: {what} file not found")
    try:
        text = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the {what} file ({err.strerror})") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str | bytes, where: str) -> Any:
    """``yaml.safe_load``: plain data only, no tag builds an object or runs code; any failure is a ConfigError."""
    try:
        return yaml.safe_load(text)
    except Exception as err:  # not only YAMLError: bad tagged scalars raise ValueError, KeyError or AttributeError
        mark = getattr(err, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        reason = str(getattr(err, "problem", None) or err).partition("\n")[0]
        raise ConfigError(f"{where}: not valid YAML{at}: {reason}") from None


def type_name(hint: Any) -> str:
    """``int``, ``str | None``: a field type as a user reads it."""
    return getattr(hint, "__name__", str(hint))


def resolve_split_file(values: Any, folder: Path) -> Any:
    """Config values read from a YAML file in ``folder``: a relative ``split_file`` names a file next to it."""
    if isinstance(values, Mapping) and isinstance(values.get("split_file"), str) and values["split_file"].strip():
        return {**values, "split_file": str(folder / Path(values["split_file"]).expanduser())}
    return values


def check(name: str, value: Any, ok: bool, why: str) -> None:
    if not ok:
        raise ConfigError(f"key {name!r} = {value!r} {why}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    check(name, value, value in choices, f"must be one of {', '.join(choices)}")
