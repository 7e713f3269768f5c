"""Exported models: the best checkpoint as a self-contained artifact, and recommendations from it.

An export folder holds ``model.pt`` (the plain-dict checkpoint without optimizer state; load it with
``torch.load(weights_only=True)``), ``config.yaml`` and ``metrics.json``. Experiments and model folders
may sit in a bucket (``s3://...``, see :mod:`raysearch.search.storage`). Nothing here needs Ray.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from raysearch.config import TrainConfig
from raysearch.data.features import Field, content_matrix
from raysearch.data.movielens import user_attribute_tokens
from raysearch.errors import ConfigError, DataError
from raysearch.model.graph import nearest
from raysearch.search.storage import Location, copy_dir, local_copy, resolve
from raysearch.train.checkpoint import CHECKPOINT_FILE, load_checkpoint, model_from_checkpoint, save_checkpoint
from raysearch.train.inputs import ModelInputs

MODEL_FILE = "model.pt"


def export_model(experiment: str | os.PathLike | Location, out: str | os.PathLike | Location,
                 endpoint: str | None = None, trial: str | None = None) -> Location:
    """Copy the experiment's best checkpoint (``trial``: that trial's, e.g. a point of a Pareto front) into
    ``out`` as a standalone model folder; either may be a bucket URI (``endpoint``: a custom S3 endpoint). A
    local ``out`` appears atomically."""
    experiment, out = resolve(experiment, endpoint), resolve(out, endpoint)
    source = (experiment / "best_checkpoint" if trial is None else trial_checkpoint(experiment, trial)) / CHECKPOINT_FILE
    if not source.is_file():
        raise DataError(f"{experiment}: no best_checkpoint/{CHECKPOINT_FILE}; is this a finished raysearch experiment?")
    if out.list_files():
        raise DataError(f"{out}: output folder already holds files; choose another --out")
    with local_copy(source) as path:
        checkpoint = {**load_checkpoint(path), "optimizer": None}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        save_checkpoint(checkpoint, tmp / MODEL_FILE)
        (tmp / "config.yaml").write_text(TrainConfig.from_dict(checkpoint["config"]).to_yaml())
        (tmp / "metrics.json").write_text(json.dumps({"epoch": checkpoint["epoch"], **checkpoint["metrics"]}, indent=2))
        copy_dir(resolve(tmp), out)
    return out


def trial_checkpoint(experiment: Location, trial: str) -> Location:
    """The folder of ``trial``'s best-epoch checkpoint, as the experiment's trials.csv names it."""
    listing = experiment / "trials.csv"
    if not listing.is_file():
        raise DataError(f"{experiment}: no trials.csv; is this a finished raysearch experiment?")
    table = pd.read_csv(io.StringIO(listing.read_text()), dtype={"trial_id": str, "checkpoint": str},
                        keep_default_na=False)
    if "checkpoint" not in table:
        raise DataError(f"{listing}: no checkpoint column (written by an older raysearch); export its best "
                        "checkpoint without --trial")
    rows = table[table["trial_id"] == trial]
    if rows.empty:
        raise DataError(f"{listing}: no trial {trial!r}; its trials: {', '.join(table['trial_id'])}")
    if not rows["checkpoint"].iloc[0]:
        raise DataError(f"{listing}: trial {trial!r} kept no checkpoint ({rows['stopped_by'].iloc[0]})")
    return experiment / rows["checkpoint"].iloc[0]


@dataclass(frozen=True)
class Recommendation:
    item_id: int
    title: str
    score: float


class Recommender:
    """A loaded model with its id maps: top-k items for a known user or for attributes alone."""

    def __init__(self, checkpoint: dict) -> None:
        self.checkpoint = checkpoint
        self.config = TrainConfig.from_dict(checkpoint["config"])
        self.model = model_from_checkpoint(checkpoint).eval()
        if (len(checkpoint["user_ids"]), len(checkpoint["item_ids"]), len(checkpoint["item_titles"])) != (
                self.model.num_users, self.model.num_items, self.model.num_items):
            raise ValueError("its id maps and titles do not match the model's users and items")
        self.inputs = checkpoint_inputs(checkpoint)
        self.user_index = {int(u): i for i, u in enumerate(checkpoint["user_ids"].tolist())}
        with torch.no_grad():
            self.reps = self.inputs.forward(self.model)

    @property
    def item_vectors(self) -> torch.Tensor:
        return self.reps.nodes[self.model.num_users:]

    def recommend(self, user_id: int, k: int = 10) -> list[Recommendation]:
        """Top-k for a user of the training data (original id); items they interacted with are skipped."""
        if user_id not in self.user_index:
            raise DataError(f"user {user_id} is not in the model's data; use --user-attrs for a new user")
        user = self.user_index[user_id]
        scores = self.item_vectors @ self.reps.nodes[user]
        train = self.checkpoint["train"]
        scores[train[train[:, 0] == user, 1]] = -torch.inf
        return self._top(scores, k)

    def recommend_for_attributes(self, attributes: dict[str, str], k: int = 10) -> list[Recommendation]:
        """Top-k for a new (cold) user described only by attributes, e.g. ``{"gender": "F", "age": "25"}``."""
        if not self.model.fusions:
            raise DataError("this model has no attribute fields (fusion: none), so it cannot score a new user")
        return self._top(self.item_vectors @ self.new_user_vector(
            user_attribute_tokens(attributes, self.checkpoint["user_fields"])), k)

    @torch.no_grad()
    def new_user_vector(self, tokens: list[list[int]]) -> torch.Tensor:
        """The ``[d]`` vector of a user without interactions, from one token bag per user field: its fused fields,
        plus with ``user_neighbours`` the mix of its most similar known users' graph views, as in training."""
        vector = self.model.fusions[0]([(torch.tensor(bag), torch.tensor([0])) for bag in tokens])[0][0]
        if not self.config.settings.user_neighbours:
            return vector
        known = torch.nonzero(self.inputs.known[:self.model.num_users]).squeeze(1)
        contents = [content_matrix(checkpoint_fields(self.checkpoint, "user", bags)) for bags in (tokens, None)]
        _, column, weight = nearest(contents[0], contents[1][known], self.config.settings.user_neighbours)
        return vector + weight @ self.reps.nodes[known[column]]

    def _top(self, scores: torch.Tensor, k: int) -> list[Recommendation]:
        if k < 1:
            raise ConfigError(f"k must be >= 1 (the number of items to recommend), got {k}")
        values, items = torch.topk(scores, min(k, len(scores)))
        ids, titles = self.checkpoint["item_ids"], self.checkpoint["item_titles"]
        return [Recommendation(int(ids[i]), titles[i], float(v)) for v, i in zip(values, items)]


def parse_attributes(text: str, source: str = "--user-attrs") -> dict[str, str]:
    """``gender=F,age=25`` -> ``{"gender": "F", "age": "25"}``; anything else is an error naming ``source``."""
    pairs = [p.partition("=") for p in text.split(",") if p.strip()]
    if any(not sep for _, sep, _ in pairs):
        raise DataError(f"{source}: expected key=value pairs separated by commas, got {text!r}")
    return {k.strip(): v for k, _, v in pairs}


def checkpoint_inputs(checkpoint: dict) -> ModelInputs:
    """Rebuild the model inputs (graph, attribute bags, attribute neighbours) from what a checkpoint carries."""
    args, own = checkpoint["model_args"], TrainConfig.from_dict(checkpoint["config"]).settings
    return ModelInputs.from_fields(checkpoint_fields(checkpoint, "user"), checkpoint_fields(checkpoint, "item"),
                                   checkpoint["train"].numpy(), (args["num_users"], args["num_items"]),
                                   (own.user_neighbours, own.item_neighbours))


def checkpoint_fields(checkpoint: dict, side: str, tokens: list[list[int]] | None = None) -> list[Field]:
    """A side's attribute fields as the checkpoint stores them, or (``tokens``: one bag per field) one new entity's."""
    stored = checkpoint[f"{side}_fields"]
    bags = [(f["tokens"].numpy(), f["offsets"].numpy()) for f in stored] if tokens is None else \
        [(np.array(bag, dtype=np.int64), np.array([0, len(bag)])) for bag in tokens]
    return [Field(f["name"], f["kind"], tuple(f["vocab"]), f["size"], *bag) for f, bag in zip(stored, bags)]


def load_model(path: str | os.PathLike | Location, endpoint: str | None = None) -> Recommender:
    """Load an exported model folder (or a checkpoint file), local or in a bucket, without Ray."""
    location = resolve(path, endpoint)
    file = location / MODEL_FILE if location.is_dir() else location
    if location.is_dir() and not file.is_file():
        raise DataError(f"{location}: no {MODEL_FILE}; expected a folder written by `raysearch export`")
    if not file.is_file():
        raise DataError(f"{file}: checkpoint file not found")
    with local_copy(file) as local:
        checkpoint = load_checkpoint(local)
    try:
        return Recommender(checkpoint)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as err:  # a damaged checkpoint
        reason = str(err).partition("\n")[0]
        raise DataError(f"{file}: the model cannot be rebuilt from this checkpoint "
                        f"({type(err).__name__}: {reason})") from None
