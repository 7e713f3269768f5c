"""``raysearch train``: the run's config from its sources, and its output folder (config, split, best
checkpoint, per-epoch history, final metrics, TensorBoard scalars)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from raysearch.config import TrainConfig
from raysearch.data.movielens import Dataset
from raysearch.data.protocols import Split
from raysearch.data.split_files import SPLIT_FILE, split_file_settings, write_split
from raysearch.errors import RaysearchError
from raysearch.train.fit import FitResult, fit
from raysearch.train.tensorboard import LocalReporter


def run_config(config_file: Path | None, split_file: Path | None, assignments: list[str]) -> TrainConfig:
    """Precedence: defaults < ``config_file`` (YAML) < ``split_file`` (its protocol and dataset) <
    ``assignments`` (``key=value``, later ones win). A model that cannot score the protocol is refused."""
    config = TrainConfig.from_yaml(config_file) if config_file else TrainConfig()
    if split_file:
        config = config.updated(split_file_settings(split_file), source=f"--split-file {split_file}")
    return config.with_overrides(assignments).require_scorable()


def new_run_folder(out: Path | None, config: TrainConfig) -> Path:
    """``out`` (default ``runs/<dataset>-<split>-<time>``), which must not hold files yet."""
    out = out or Path("runs") / f"{config.dataset}-{config.split}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RaysearchError(f"{out}: output folder already holds files (or is a file); choose another --out")
    return out


def train_to_folder(config: TrainConfig, dataset: Dataset, split: Split, out: Path,
                    metrics_out: Path | None = None) -> FitResult:
    """Fit ``config.model`` on ``split``, writing the run folder as it goes (README, "Training one model");
    the final metrics also go to ``metrics_out`` when given."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(config.to_yaml())
    write_split(split, dataset, out / SPLIT_FILE)
    reporter = LocalReporter(out, config.metric, config.epochs)
    try:
        result = fit(config, dataset, split, reporter)
    finally:
        reporter.close()
    pd.DataFrame(result.history).to_csv(out / "history.csv", index=False)
    final = json.dumps({"best_epoch": result.best_epoch, "valid": result.valid, "test": result.test}, indent=2)
    for path in (out / "metrics.json", metrics_out):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(final)
    return result
