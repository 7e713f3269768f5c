"""The typed run configuration: the single source of truth for a training run.

A config is the keys every model shares (:class:`TrainConfig`'s fields) plus the model's own settings
(``settings``, declared in :mod:`raysearch.registry`). Users only ever see one flat set of keys (YAML
``config:`` blocks, ``--set``, search-space params, checkpoints, ``best_config.yaml``):
:meth:`TrainConfig.from_dict` routes each key, :meth:`TrainConfig.to_dict` flattens them back.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from raysearch.errors import ConfigError, check, check_choice
from raysearch.registry import MODELS, ModelSpec, Settings, model_spec

DATASETS = ("ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "synthetic")  # synthetic: raysearch synthesize
WITHOUT_USER_ATTRIBUTES = ("ml-10m", "ml-20m", "ml-25m", "synthetic")  # GroupLens publishes none for these
ANONYMOUS_USERS = ("anonymous",)  # their one user field: the same unknown token for every user
PROTOCOLS = ("warm", "item_cold", "user_cold", "mixed")
COLD_SIDES = {"item_cold": "items", "user_cold": "users", "mixed": "items"}  # protocol -> the side it holds out
# (mixed: the users too when cold_user_share > 0)
METRIC_NAMES = ("recall", "ndcg", "mrr", "hit")  # full-ranking metrics, each reported @K for every K in topk
MIXED_PARTS = ("warm_", "item_cold_", "user_cold_")  # metric prefixes of a mixed split's parts
PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")  # Ray placement-group strategies


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run: the common keys, and the model's own in ``settings``.

    Built directly, a config takes the values as given (``settings`` defaults to the model's settings
    class, pins applied). :meth:`from_dict`, the path of every user-facing input, also applies the
    model's registry defaults to the keys not given.
    """

    model: str = "fusion_gcn"  # fusion_gcn (ours) | baselines: see raysearch/registry.py
    dataset: str = "ml-100k"  # ml-100k | ml-1m | ml-10m | ml-20m | ml-25m | synthetic (the last four: no user attributes)
    split: str = "warm"  # evaluation protocol: warm | item_cold | user_cold
    cold_user_share: float = 0.0  # split=mixed: share of the users held out as cold users (0: only items are cold)
    split_file: str | None = None  # JSON split file used instead of drawing one (protocol = `split`); made absolute
    rating_threshold: float = 0.0  # ratings >= this count as positives (0 keeps every rating)
    text_buckets: int = 1024  # hash buckets for title words
    year_spans: tuple[int, ...] = (5,)  # widths in years of the item year field's tokens: (5,) one "1995-1999"
    # token per item; (1, 5) a bag of "1997" and "1995-1999" (see reports/ml-100k-years/)
    user_fields: tuple[str, ...] = ("gender", "age", "occupation", "zip_region")  # user attribute fields models see
    # (default on the sets without user attributes: anonymous)
    item_fields: tuple[str, ...] = ("genres", "year")  # item attribute fields models see; "title" (hashed words)
    # is left out by default: a word that names one warm item lets a content encoder memorise it (the
    # with_title_words ablation in reports/ml-100k/comparison.md measures what it costs cold items)
    embedding_dim: int = 64  # width of ID, field and graph embeddings
    learning_rate: float = 0.005  # Adam step size (LightGBM: shrinkage)
    weight_decay: float = 0.0  # Adam L2 penalty on all parameters
    num_negatives: int = 32  # sampled negatives per training interaction
    batch_size: int = 2048  # training interactions per step
    epochs: int = 100  # maximum number of epochs
    patience: int = 10  # epochs without validation improvement before stopping early
    metric: str = "ndcg@10"  # validation metric for early stopping and model selection (higher is better)
    topk: tuple[int, ...] = (10, 20)  # cut-offs K reported for every metric
    eval_batch_users: int = 512  # users scored per chunk during evaluation (bounds memory)
    seed: int = 42  # seeds the split, initialisation, negatives and batches
    mixed_precision: str = "off"  # autocast in training steps: off | bf16 (CPU or CUDA) | fp16 (CUDA, loss scaling)
    settings: Settings | None = None  # the model's own keys (registry.ModelSpec.settings); None: their defaults

    def __post_init__(self) -> None:
        spec = self.spec
        own = self.settings if self.settings is not None else spec.settings()
        if not isinstance(own, spec.settings):
            raise ConfigError(f"model {self.model!r} takes {spec.settings.__name__}, not {type(own).__name__}")
        object.__setattr__(self, "settings", spec.pinned(dataclasses.asdict(own)))
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("split", self.split, PROTOCOLS)
        check_choice("mixed_precision", self.mixed_precision, ("off", "bf16", "fp16"))
        if self.split_file is not None:
            check("split_file", self.split_file, bool(self.split_file.strip()), "must be a file path or null")
            object.__setattr__(self, "split_file", os.path.abspath(os.path.expanduser(self.split_file)))
        for name in ("embedding_dim", "batch_size", "num_negatives", "epochs", "patience", "eval_batch_users",
                     "text_buckets"):
            check(name, getattr(self, name), getattr(self, name) >= 1, "must be >= 1")
        check("learning_rate", self.learning_rate, 0 < self.learning_rate <= 1e3,
              "must be in (0, 1000]")  # Adam's float32 step overflows near 1e38
        check("weight_decay", self.weight_decay, self.weight_decay >= 0, "must be >= 0")
        check("weight_decay", self.weight_decay, self.weight_decay == 0 or not getattr(own, "sparse_ids", False),
              "must be 0 with sparse_ids=true (SparseAdam has no weight decay)")
        check("split", self.split, "users" not in self.cold_sides() or self.dataset not in WITHOUT_USER_ATTRIBUTES,
              f"holds out cold users, which only user attributes could represent, and {self.dataset} has none "
              "(GroupLens publishes none for it): use warm or item_cold")
        check("cold_user_share", self.cold_user_share, 0 <= self.cold_user_share < 1
              and (self.split == "mixed" or self.cold_user_share == 0), "must be in [0, 1), and 0 unless split=mixed")
        for name in ("user_fields", "item_fields"):
            fields = getattr(self, name)
            check(name, fields, len(fields) > 0 and len(set(fields)) == len(fields), "must be a non-empty list of "
                  "distinct field names")
        check("year_spans", self.year_spans, len(self.year_spans) > 0 and min(self.year_spans) >= 1
              and len(set(self.year_spans)) == len(self.year_spans), "must be a non-empty list of distinct widths >= 1")
        check("topk", self.topk, len(self.topk) > 0 and min(self.topk) >= 1, "must be a non-empty list of K >= 1")
        name, _, k = self.metric.partition("@")
        prefixes = MIXED_PARTS if self.split == "mixed" else ()
        name = next((name.removeprefix(p) for p in prefixes if name.startswith(p)), name)
        check("metric", self.metric, name in METRIC_NAMES and k in {str(t) for t in self.topk},
              f"must be one of {'|'.join(METRIC_NAMES)} @ a K in topk {list(self.topk)}"
              + (f", optionally prefixed by a mixed part ({', '.join(prefixes)}; none: their mean)" if prefixes else ""))

    @property
    def spec(self) -> ModelSpec:
        return model_spec(self.model)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "TrainConfig":
        """Build a config from flat plain values: the model's registry defaults apply to the keys not given,
        pins are enforced; an error names ``source``, the key and the value (an unknown key, the keys the
        model knows)."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: expected a mapping of config keys, got {type(values).__name__}")
        try:
            spec = model_spec(coerce(str, values.get("model", cls.model), "key 'model'"))
            hints = key_types(spec.name)
            given = {}
            for key, value in values.items():
                if key not in hints:
                    raise ConfigError(f"unknown key {key!r} (value {value!r}) for model {spec.name!r}; its keys: "
                                      f"{', '.join(hints)}")
                given[key] = coerce(hints[key], value, f"key {key!r}")
            merged = {**spec.defaults, **dataset_defaults(given.get("dataset", cls.dataset)), **given}
            own = spec.pinned({k: merged[k] for k in spec.settings_keys() if k in merged})
            return cls(**{k: v for k, v in merged.items() if k in COMMON_KEYS}, settings=own)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        """Load a config saved by :meth:`to_yaml` (or written by hand)."""
        return cls.from_dict(read_config_values(Path(path)), source=str(path))

    def with_overrides(self, assignments: list[str], source: str = "--set") -> "TrainConfig":
        """Apply ``key=value`` strings (values parsed as YAML scalars) on top of this config."""
        changes = {}
        for item in assignments:
            key, sep, raw = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"{source}: expected key=value, got {item!r}")
            changes[key.strip()] = parse_yaml(raw, f"{source}: value {raw!r} for key {key!r}") if raw.strip() else raw
        return self.updated(changes, source)

    def updated(self, changes: Mapping[str, Any], source: str = "config") -> "TrainConfig":
        """This config with ``changes`` (flat keys). A change of model drops the old model's own settings and
        every key still at the old model's default, so the new model's defaults apply to them; a change of dataset
        does the same for the keys still at the old dataset's default (:func:`dataset_defaults`)."""
        values = self.to_dict()
        if changes.get("dataset", self.dataset) != self.dataset:
            values = {k: v for k, v in values.items() if k not in dataset_defaults(self.dataset)
                      or tuple(v) != dataset_defaults(self.dataset)[k]}
        if changes.get("model", self.model) != self.model:
            defaults = TrainConfig.from_dict({"model": self.model}).to_dict()
            values = {k: v for k, v in values.items() if k in COMMON_KEYS and v != defaults[k]}
        return TrainConfig.from_dict({**values, **changes}, source=source)

    def to_dict(self) -> dict[str, Any]:
        """Flat plain values: the common keys, then the model's own (lists instead of tuples)."""
        values = {k: getattr(self, k) for k in COMMON_KEYS} | dataclasses.asdict(self.settings)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def cold_sides(self) -> frozenset[str]:
        """The sides (users, items) the protocol holds out of training, none for warm."""
        side = COLD_SIDES.get(self.split)
        users = {"users"} if self.cold_user_share > 0 else set()
        return frozenset(({side} if side else set()) | users)

    def can_score(self) -> bool:
        """Whether the model can represent the entities its protocol holds out (from attributes or
        interactions; an ID-only model cannot place a user or item without training interactions) and,
        for ``mixed``, serves that protocol."""
        return (not self.cold_sides() & (self.spec.needs | self.settings.needs())
                and (self.split != "mixed" or self.spec.mixed))

    def require_scorable(self) -> "TrainConfig":
        """This config, if :meth:`can_score`; else a ConfigError naming the model and the protocol."""
        if self.split == "mixed" and not self.spec.mixed:
            raise ConfigError(f"model {self.model!r} does not serve the mixed protocol (its warm and cold parts at "
                              f"once); models that do: {', '.join(m for m, s in MODELS.items() if s.mixed)}")
        if not self.can_score():
            sides = " and ".join(sorted(self.cold_sides() & (self.spec.needs | self.settings.needs())))
            raise ConfigError(f"model {self.model!r} needs interactions for the held-out {sides} of the "
                              f"{self.split} protocol, so it cannot score it")
        return self


COMMON_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name != "settings")


def dataset_defaults(dataset: str) -> dict[str, Any]:
    """Defaults that depend on the dataset: the sets without user attributes have one anonymous user field."""
    if dataset in WITHOUT_USER_ATTRIBUTES:
        return {"user_fields": ANONYMOUS_USERS}
    return {"user_fields": TrainConfig.user_fields}


def key_types(model: str) -> dict[str, Any]:
    """Every flat key of ``model``'s configs and its type hint: the common keys, then the model's own."""
    common = typing.get_type_hints(TrainConfig)
    return {**{k: common[k] for k in COMMON_KEYS}, **typing.get_type_hints(model_spec(model).settings)}


def read_config_values(path: Path) -> dict[str, Any]:
    """The flat values of a config YAML file (a relative ``split_file`` names a file next to it)."""
    return resolve_split_file(read_yaml(path, "config") or {}, path.parent)


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
        check_choice("placement_strategy", self.placement_strategy, PLACEMENT_STRATEGIES)
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
