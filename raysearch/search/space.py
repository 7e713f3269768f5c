"""Search spaces as YAML, validated against :class:`TrainConfig` before Ray starts.

A space file has these parts (every key optional except ``params``)::

    experiment: {name: default, num_samples: 16, max_concurrent_trials: null, n_startup_trials: null, seed: 0,
                 evaluate_config: false}
    scheduler: {grace_period: 2, reduction_factor: 2}          # ASHA on the reported epoch, max_t = epochs
    resources: {workers_per_trial: 1, cpus_per_worker: 1.0, use_gpu: false,
                num_to_keep: 2, max_failures: 1}
    config: {dataset: ml-100k, split: warm, epochs: 30, metric: ndcg@10}   # fixed config keys
    objectives:                        # 2 or more: a multi-objective search (Pareto front); none: config.metric
      - {metric: warm_ndcg@10, mode: max}
      - {metric: item_cold_ndcg@10, mode: max}
    params:                                                     # searched config keys (of config.model)
      learning_rate: {type: loguniform, low: 1.0e-4, high: 1.0e-1}
      num_layers: {type: randint, low: 0, high: 4}              # both bounds included
      temperature: {type: uniform, low: 0.05, high: 1.0}
      embedding_dim: {type: choice, values: [32, 64]}

The validation metric (``config.metric``, maximised) is declared once; its running best over a trial's
epochs (:data:`OBJECTIVE`) drives TPE, ASHA and the best trial, and checkpoints are ranked by their own
epoch's metric (the best epoch's is the objective). With ``objectives``, TPE optimises them jointly, each
taken at the trial's best epoch by ``config.metric`` (one checkpoint per trial), which must be one of the
objectives or their mean (a mixed split's plain metric name); ASHA still schedules on it unless
``scheduler.asha`` is false. Files load with
``yaml.safe_load`` only; every error names the file, the key and the value, including the values Ray
would reject (``grace_period`` above ``epochs``, say).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raysearch.config import (MIXED_PARTS, Scaling, TrainConfig, coerce, key_types, read_yaml, resolve_split_file,
                              type_name)
from raysearch.errors import ConfigError, RaysearchError, check
from raysearch.search.storage import Location, local_copy

SPACE_FILE = "search_space.yaml"  # the resolved space, saved in every experiment folder for --resume
JOURNAL_FILE = "optuna.journal"  # the Optuna study of every experiment
OBJECTIVE = "best_value"  # what every epoch reports: the best validation config.metric of the trial so far
PARAM_TYPES = {"loguniform": ("low", "high"), "uniform": ("low", "high"), "randint": ("low", "high"),
               "choice": ("values",)}


@dataclass(frozen=True)
class Param:
    """One searched config key: a distribution and its bounds (``randint`` includes ``high``)."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    values: tuple = ()

    def contains(self, value: Any) -> bool:
        """Whether ``value`` can be drawn from this distribution."""
        return value in self.values if self.type == "choice" else self.low <= value <= self.high

    def to_tune(self) -> Any:
        from ray import tune  # Ray stays at the edges: importing this module does not start it

        if self.type == "loguniform":
            return tune.loguniform(self.low, self.high)
        if self.type == "uniform":
            return tune.uniform(self.low, self.high)
        if self.type == "randint":
            return tune.randint(int(self.low), int(self.high) + 1)
        return tune.choice(list(self.values))


@dataclass(frozen=True)
class Experiment:
    name: str = "raysearch"  # folder under the storage path
    num_samples: int = 16  # trials to run
    max_concurrent_trials: int | None = None  # trials at once; None: as many as Ray's CPUs hold (CPUs / CPUs per trial)
    n_startup_trials: int | None = None  # TPE's random start-up trials; None: num_samples // 4, between 1 and 10
    seed: int = 0  # seeds the TPE sampler
    evaluate_config: bool = False  # the first trial takes the searched keys' values from the config block (the
    # shipped settings), so the search never returns a best below them; the values must lie in the params' ranges

    def __post_init__(self) -> None:
        check("name", self.name, self.name.isprintable() and "/" not in self.name and not self.name.startswith(".")
              and 0 < len(self.name.encode()) <= 255, "must be a plain folder name")
        check("num_samples", self.num_samples, self.num_samples >= 1, "must be >= 1")
        check("max_concurrent_trials", self.max_concurrent_trials,
              self.max_concurrent_trials is None or self.max_concurrent_trials >= 1, "must be >= 1 (or null: automatic)")
        check("n_startup_trials", self.n_startup_trials, self.n_startup_trials is None
              or 1 <= self.n_startup_trials <= self.num_samples, f"must be in 1..num_samples ({self.num_samples})")

    @property
    def startup_trials(self) -> int:
        """TPE's random start-up trials: ``n_startup_trials``, else a quarter of the budget (1 to 10); with
        few trials Optuna's own default of 10 would leave TPE little to guide."""
        return self.n_startup_trials or min(10, max(1, self.num_samples // 4))


@dataclass(frozen=True)
class Scheduler:
    grace_period: int = 2  # epochs every trial runs before ASHA may stop it
    reduction_factor: int = 2  # ASHA keeps 1/reduction_factor of trials at each rung
    asha: bool = True  # false: every trial runs until its epochs or patience end (no early stopping by ASHA)

    def __post_init__(self) -> None:
        check("grace_period", self.grace_period, self.grace_period >= 1, "must be >= 1")
        check("reduction_factor", self.reduction_factor, self.reduction_factor >= 2, "must be >= 2")


@dataclass(frozen=True)
class Objective:
    """One objective of a multi-objective search: a validation metric (as ``config.metric`` names it) and
    whether it is maximised or minimised."""

    metric: str
    mode: str = "max"

    @property
    def key(self) -> str:
        """The reported key: the metric at the trial's best epoch so far."""
        return f"best_valid_{self.metric}"


@dataclass(frozen=True)
class SearchSpace:
    """A validated search: fixed config, searched params and how to run the trials."""

    source: str
    config: TrainConfig
    params: tuple[Param, ...]
    experiment: Experiment = field(default_factory=Experiment)
    scheduler: Scheduler = field(default_factory=Scheduler)
    resources: Scaling = field(default_factory=Scaling)
    objectives: tuple[Objective, ...] = ()  # empty: one objective, config.metric

    def __post_init__(self) -> None:
        if self.scheduler.grace_period > self.config.epochs:  # Ray's ASHA asserts grace_period <= max_t
            raise ConfigError(f"{self.source}: scheduler: key 'grace_period' = {self.scheduler.grace_period} must be "
                              f"<= config.epochs = {self.config.epochs} (ASHA's max_t)")

    @property
    def metric(self) -> str:
        """The reported key of ``config.metric`` (always maximised): its running best is :data:`OBJECTIVE`."""
        return f"valid_{self.config.metric}"

    @property
    def objective_metrics(self) -> tuple[str, ...]:
        """The reported keys of the objectives, each trial reporting them at its best epoch too."""
        return tuple(f"valid_{o.metric}" for o in self.objectives)

    def tune_space(self) -> dict[str, Any]:
        return {p.key: p.to_tune() for p in self.params}

    def first_trials(self) -> list[dict[str, Any]]:
        """Trials the search runs before sampling (Optuna enqueues them): the config's own values when
        ``experiment.evaluate_config``."""
        config = self.config.to_dict()
        return [{p.key: config[p.key] for p in self.params}] if self.experiment.evaluate_config else []

    def trial_config(self, sampled: dict[str, Any]) -> TrainConfig:
        """The fixed config with a trial's sampled values (numpy scalars become plain Python)."""
        values = {k: v.item() if hasattr(v, "item") else v for k, v in sampled.items()}
        return self.config.updated(values, source=f"{self.source} (trial)")

    def to_document(self) -> dict[str, Any]:
        """The YAML document that :func:`parse_space` turns back into this space."""
        params = {p.key: {"type": p.type, "values": list(p.values)} if p.type == "choice"
                  else {"type": p.type, "low": p.low, "high": p.high} for p in self.params}
        objectives = {"objectives": [dataclasses.asdict(o) for o in self.objectives]} if self.objectives else {}
        return {"experiment": dataclasses.asdict(self.experiment), "scheduler": dataclasses.asdict(self.scheduler),
                "resources": dataclasses.asdict(self.resources), "config": self.config.to_dict(), **objectives,
                "params": params}

    def with_overrides(self, assignments: list[str]) -> "SearchSpace":
        """``--set key=value`` on top of the file: fixes ``key`` (and stops searching it)."""
        config = self.config.with_overrides(assignments)
        overridden = {a.partition("=")[0].strip() for a in assignments}
        return dataclasses.replace(self, config=config, params=tuple(p for p in self.params if p.key not in overridden))

    def with_resources(self, **changes: Any) -> "SearchSpace":
        """Resources changed by the values that are not None (command-line flags left out are None)."""
        given = {k: v for k, v in changes.items() if v is not None}
        return check_resources(dataclasses.replace(self, resources=dataclasses.replace(self.resources, **given)))


def check_resources(space: SearchSpace) -> SearchSpace:
    """``space`` if its trials can run on its resources: several workers need a data-parallel model, and over NCCL
    (GPUs) dense gradients, since NCCL has no sparse all-reduce."""
    config, scaling = space.config, space.resources
    if not config.spec.data_parallel and scaling.workers_per_trial != 1:
        raise ConfigError(f"{space.source}: resources.workers_per_trial = {scaling.workers_per_trial}: model "
                          f"{config.model!r} trains on one worker; set workers_per_trial: 1")
    sparse = {getattr(config.settings, "sparse_ids", False)} | {
        v for p in space.params if p.key == "sparse_ids" for v in p.values}
    if True in sparse and scaling.use_gpu and scaling.workers_per_trial > 1:
        raise ConfigError(f"{space.source}: sparse_ids: true with resources.use_gpu and workers_per_trial = "
                          f"{scaling.workers_per_trial}: NCCL has no sparse all-reduce; set sparse_ids: false or "
                          "workers_per_trial: 1")
    return space


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space YAML file."""
    path = Path(path)
    document = read_yaml(path, "search space")
    if isinstance(document, dict) and "config" in document:  # a relative split_file names a file next to the space
        document = {**document, "config": resolve_split_file(document["config"], path.parent)}
    return parse_space(document, str(path))


def saved_space(experiment: Location) -> SearchSpace:
    """The resolved space an experiment saved when it started, which ``--resume`` reuses."""
    if not (experiment / SPACE_FILE).is_file():
        raise RaysearchError(f"{experiment}: not a raysearch experiment folder (no {SPACE_FILE}) to resume")
    with local_copy(experiment / SPACE_FILE) as path:
        return load_space(path)


def parse_space(document: Any, source: str) -> SearchSpace:
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(document).__name__}")
    sections = {"experiment": Experiment, "scheduler": Scheduler, "resources": Scaling, "config": None,
                "objectives": None, "params": None}
    for key, value in document.items():
        if key not in sections:
            raise ConfigError(f"{source}: unknown section {key!r}; expected one of {', '.join(sections)}")
        if key == "objectives":
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: section {key!r} must be a mapping, got {value!r}")
    config = TrainConfig.from_dict(document.get("config") or {}, source=f"{source}: config")
    params = tuple(_param(key, spec, config.model, f"{source}: params.{key}")
                   for key, spec in (document.get("params") or {}).items())
    if not params:
        raise ConfigError(f"{source}: params is empty; give at least one key to search")
    space = SearchSpace(source, config, params,
                        **{name: _section(cls, document.get(name) or {}, f"{source}: {name}")
                           for name, cls in sections.items() if cls is not None},
                        objectives=_objectives(document.get("objectives"), config, source))
    if space.experiment.evaluate_config:
        for p in params:
            value = config.to_dict()[p.key]
            if not p.contains(value):
                raise ConfigError(f"{source}: experiment.evaluate_config: config value {p.key} = {value!r} lies outside "
                                  f"params.{p.key}; set it inside the range or set evaluate_config: false")
    check_resources(space)
    for p in params:  # every corner of the space must be a valid config
        for corner in ({p.key: p.low}, {p.key: p.high}) if p.type != "choice" else ({p.key: v} for v in p.values):
            try:
                space.trial_config({k: int(v) if p.type == "randint" else v for k, v in corner.items()})
            except ConfigError as err:
                raise ConfigError(f"{source}: params.{p.key}: {err}".replace(f"{source} (trial): ", "")) from None
    return space


def _objectives(listed: Any, config: TrainConfig, source: str) -> tuple[Objective, ...]:
    """The ``objectives`` section: 2 or more distinct metrics of the config's protocol, each max or min, and
    ``config.metric`` (the scalar for early stopping, checkpoints and ASHA) one of them or their mean."""
    if listed is None:
        return ()
    where = f"{source}: objectives"
    if not isinstance(listed, list) or len(listed) < 2:
        raise ConfigError(f"{where}: expected a list of 2 or more {{metric, mode}}, got {listed!r} (one objective "
                          "is config.metric: leave objectives out)")
    objectives = []
    for index, entry in enumerate(listed):
        if not isinstance(entry, dict) or set(entry) - {"metric", "mode"} or "metric" not in entry:
            raise ConfigError(f"{where}[{index}]: expected {{metric: NAME, mode: max|min}}, got {entry!r}")
        objective = Objective(str(entry["metric"]), str(entry.get("mode", "max")))
        if objective.mode not in ("max", "min"):
            raise ConfigError(f"{where}[{index}].mode: expected max or min, got {objective.mode!r}")
        try:
            config.updated({"metric": objective.metric}, source="")
        except ConfigError as err:
            raise ConfigError(f"{where}[{index}].metric: {str(err).removeprefix(': ')}") from None
        if objective.metric in (o.metric for o in objectives):
            raise ConfigError(f"{where}[{index}].metric: {objective.metric!r} is listed twice")
        objectives.append(objective)
    names = [o.metric for o in objectives]
    bases = {next((n.removeprefix(p) for p in MIXED_PARTS if n.startswith(p)), n) for n in names}
    mean = bases.pop() if len(bases) == 1 and config.split == "mixed" else None
    if config.metric not in names and config.metric != mean:
        raise ConfigError(f"{source}: config: key 'metric' = {config.metric!r} (the scalar of early stopping, "
                          f"checkpoints and ASHA) names no objective; use one of {', '.join(names)}"
                          + (f" or their mean {mean}" if mean else ""))
    return tuple(objectives)


def _param(key: str, spec: Any, model: str, where: str) -> Param:
    hints = key_types(model)
    if key not in hints:
        raise ConfigError(f"{where}: unknown parameter {key!r} for model {model!r}; searchable keys: {', '.join(hints)}")
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str) or spec["type"] not in PARAM_TYPES:
        raise ConfigError(f"{where}: expected {{type: {'|'.join(PARAM_TYPES)}, ...}}, got {spec!r}")
    kind = spec["type"]
    wanted = set(PARAM_TYPES[kind]) | {"type"}
    if set(spec) != wanted:
        raise ConfigError(f"{where}: type {kind} takes keys {sorted(wanted)}, got {sorted(spec)}")
    if kind == "choice":
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: values must be a non-empty list, got {values!r}")
        return Param(key, kind, values=tuple(coerce(hints[key], v, f"{where}.values") for v in values))
    low, high = (coerce(int if kind == "randint" else float, spec[b], f"{where}.{b}") for b in ("low", "high"))
    if low >= high:
        raise ConfigError(f"{where}: low must be < high, got low={low!r} high={high!r}")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: loguniform needs low > 0, got low={low!r}")
    if kind == "randint" and hints[key] is not int:
        raise ConfigError(f"{where}: randint needs an integer key, {key!r} is {type_name(hints[key])}")
    return Param(key, kind, low, high)


def _section(cls: type, values: dict, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"{where}: unknown key {key!r} (value {value!r}); known keys: {', '.join(hints)}")
    try:
        return cls(**{k: coerce(hints[k], v, f"{where}: key {k!r}") for k, v in values.items()})
    except ConfigError as err:
        raise ConfigError(str(err) if str(err).startswith(where) else f"{where}: {err}") from None
