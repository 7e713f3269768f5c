"""The runs of ``raysearch compare``: each model's config, the per-model ``--set`` items, and the jobs
(models x splits x seeds, the full model's ablations and its learning-rate sweep)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Iterable

from raysearch.config import TrainConfig, key_types
from raysearch.errors import ConfigError
from raysearch.registry import MODELS

FULL = "fusion_gcn"  # the model whose ablations and learning rates are run
ABLATIONS: dict[str, dict] = {
    "no_contrastive": {"contrastive_weight": 0.0},
    "no_cold_path": {"cold_weight": 0.0},
    "mean_fusion": {"fusion": "mean"},
    "no_graph": {"num_layers": 0},
    "no_attributes": {"fusion": "none", "contrastive_weight": 0.0, "cold_weight": 0.0, "distill_weight": 0.0,
                      "user_neighbours": 0},
    "with_title_words": {"item_fields": ("genres", "year", "title")},  # a design choice, not a removal
}
LEARNING_RATES = (0.001, 0.005, 0.01, 0.05, 0.1)


@dataclasses.dataclass(frozen=True)
class Job:
    """One run: a study (models | ablations | learning_rate), the variant's name and its full config."""

    study: str
    variant: str
    config: TrainConfig

    @property
    def key(self) -> str:
        """Identifies the run in ``comparison.csv`` (compared through :func:`run_id`): same key, same run."""
        return f"{self.study}|{self.variant}|{config_label(self.config)}"


def config_label(config: TrainConfig) -> str:
    """The config's keys that differ from the field defaults of its model (common keys, then the model's own;
    a registry default shows), as ``k=v`` pairs."""
    default = TrainConfig(model=config.model).to_dict()
    return " ".join(f"{k}={v}" for k, v in config.to_dict().items() if v != default[k] or k == "model")


def run_id(key: str) -> str:
    """A run's identity from its key, whatever the order of the label's pairs: keys written before the
    model's own settings moved to the end of the label still name the same runs."""
    study, variant, label = key.split("|", 2)
    return "|".join([study, variant, *sorted(re.split(r" (?=[a-z_]+=)", label))])


def model_configs(dataset: str, models: Iterable[str], config_from: Iterable[Path] = ()) -> dict[str, TrainConfig]:
    """Each model's config: its registry defaults, or the ``best_config.yaml`` of a search experiment that tuned it."""
    configs = {}
    for name in models:
        if name not in MODELS:
            raise ConfigError(f"--models: unknown model {name!r}; expected 'all' or some of {', '.join(MODELS)}")
        configs[name] = TrainConfig.from_dict({"model": name, "dataset": dataset})
    for experiment in config_from:
        best = TrainConfig.from_yaml(Path(experiment) / "best_config.yaml")
        if best.model in configs:
            configs[best.model] = dataclasses.replace(best, dataset=dataset)
    return configs


def model_overrides(model: str, overrides: list[str]) -> list[str]:
    """The ``--set`` items for ``model``: plain ``KEY=VALUE`` items for the keys it has and does not pin, and
    the ``MODEL.KEY=VALUE`` items naming it, without the prefix. An item no model can take is an error."""
    chosen = []
    for item in overrides:
        key, sep, value = item.partition("=")
        scope, dot, name = key.strip().rpartition(".")
        if not sep or not name:
            raise ConfigError(f"--set: expected key=value or model.key=value, got {item!r}")
        if dot and scope not in MODELS:
            raise ConfigError(f"--set: value {item!r}: unknown model {scope!r} before the dot; expected one of "
                              f"{', '.join(MODELS)}")
        if dot and name in MODELS[scope].pins:
            raise ConfigError(f"--set: value {item!r}: {scope} fixes {name}={MODELS[scope].pins[name]!r} (that is what "
                              f"makes it {scope}); use {FULL}.{name}=... to vary the full model")
        owners = [scope] if dot else list(MODELS)
        if not any(name in key_types(m) for m in owners):
            raise ConfigError(f"--set: unknown key {name!r} (value {item!r}) for model{'s' * (not dot)} "
                              f"{', '.join(owners)}; keys: {', '.join(key_types(owners[0]))}")
        if scope == model or (not dot and name in key_types(model) and name not in MODELS[model].pins):
            chosen.append(f"{name}={value}")
    return chosen


def split_seeds(text: str, splits: list[str]) -> dict[str, int]:
    """``--seeds``: a count for every split, then optional ``SPLIT=COUNT`` overrides, e.g. ``3,item_cold=5``."""
    default, *overrides = [part.strip() for part in text.split(",")]
    counts = dict.fromkeys(splits, _count(default, text))
    for item in overrides:
        split, sep, count = item.partition("=")
        if not sep or split not in splits:
            raise ConfigError(f"--seeds: {item!r} is not SPLIT=COUNT for a split in --splits ({', '.join(splits)})")
        counts[split] = _count(count, text)
    return counts


def _count(text: str, whole: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"--seeds: expected a count >= 1, then SPLIT=COUNT items (e.g. 3,item_cold=5); got {whole!r}")
    return int(text)


def plan(configs: dict[str, TrainConfig], splits: list[str], seeds: dict[str, int], ablations: bool = True,
         lr_split: str | None = "warm") -> list[Job]:
    """Models on every split and seed; the full model's ablations on every split; its learning rates
    on ``lr_split``. Split ``s`` runs seeds 1..seeds[s], each drawing its own split; seed-major, so an
    interrupted compare holds whole seeds."""
    jobs = []
    for seed in range(1, max(seeds.values()) + 1):
        for split in (s for s in splits if seed <= seeds[s]):
            at = {"split": split, "seed": seed}
            jobs += [Job("models", name, dataclasses.replace(c, **at)) for name, c in configs.items()]
            full = dataclasses.replace(configs[FULL], **at) if FULL in configs else None
            if full is not None and ablations:
                jobs += [Job("ablations", name, full.updated(change)) for name, change in ABLATIONS.items()]
            if full is not None and split == lr_split:
                jobs += [Job("learning_rate", f"lr={lr:g}", dataclasses.replace(full, learning_rate=lr))
                         for lr in LEARNING_RATES]
    return jobs
