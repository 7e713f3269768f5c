"""Splits as JSON files in original dataset ids, so a split drawn here can be used by another toolkit
and a published split can be used here (format: ``split.schema.json``; README, "Compare with another toolkit").

- Compact form (``item_cold``/``user_cold``): ``cold_items`` or ``cold_users`` ``{"valid": [...],
  "test": [...]}``; every interaction of a part's cold entities goes to that part, all others to train.
- Explicit form (any protocol): ``train``/``valid``/``test`` lists of ``[user, item]`` pairs, used as listed
  (the order of ``train`` is kept: it decides the batches). With a cold protocol the cold entities of a part
  are the given ``cold_items``/``cold_users``, else the entities of the part's pairs.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import jsonschema
import numpy as np

from raysearch.atomic_files import atomic_write_text
from raysearch.config import TrainConfig
from raysearch.data.movielens import Dataset
from raysearch.data.protocols import PARTS, Split, cold_split, make_split
from raysearch.errors import DataError

SPLIT_FILE = "split.json"  # the split every run and every search writes
SPLIT_KEYS = ("split", "seed", "split_file", "cold_user_share")  # the config keys that decide a run's split
SCHEMA = json.loads(resources.files("raysearch.data").joinpath("split.schema.json").read_text())
COLD_KEYS = {"item_cold": "cold_items", "user_cold": "cold_users"}  # protocol -> key (and Split field) of its cold ids
COLUMNS = {"cold_users": 0, "cold_items": 1}  # cold key -> column of its entities in a (user, item) pair
ENTITIES = ("user", "item")  # by column
ALL_PARTS = ("train", *PARTS)
SHOWN = 5  # offending values quoted in an error
Where = Callable[[str], str]  # key -> "<file>: key '<key>'"


def split_for(config: TrainConfig, dataset: Dataset) -> Split:
    """The run's split: read from ``config.split_file`` when set, else drawn by :func:`make_split`."""
    if config.split_file is None:
        return make_split(dataset, config.split, config.seed, config.cold_user_share)
    split = read_split(config.split_file, dataset)
    if split.protocol != config.split:
        raise DataError(f"{config.split_file}: key 'protocol': the file holds a {split.protocol} split but the "
                        f"config's split is {config.split!r}; set split={split.protocol}")
    return split


def split_file_settings(path: str | Path) -> dict[str, str]:
    """The config values a split file implies: its absolute path, its protocol and (if named) its dataset."""
    document = load_document(path)
    return {"split_file": str(Path(path).resolve()), "split": document["protocol"],
            **({"dataset": document["dataset"]} if "dataset" in document else {})}


def split_summary(split: Split) -> str:
    """``train N, valid N, test N interactions`` and, for a cold protocol, its cold entities per part."""
    cold = "".join(f"; {key}: " + ", ".join(f"{p} {len(v)}" for p, v in getattr(split, key).items())
                   for key in COLUMNS if any(len(v) for v in getattr(split, key).values()))
    return ", ".join(f"{p} {len(split.part(p))}" for p in ALL_PARTS) + f" interactions{cold}"


def write_split(split: Split, dataset: Dataset, path: Path, explicit: bool = False) -> None:
    """Write ``split`` to a local file atomically (:func:`split_text`)."""
    atomic_write_text(path, split_text(split, dataset, explicit))


def split_text(split: Split, dataset: Dataset, explicit: bool = False) -> str:
    """The split file's JSON text (:func:`split_document`), one key per line."""
    document = split_document(split, dataset, explicit)
    return "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in document.items()) + "\n}\n"


def split_document(split: Split, dataset: Dataset, explicit: bool = False) -> dict[str, Any]:
    """The split in original ids: the compact form where it reproduces the split exactly (a cold protocol,
    not ``explicit``), else the explicit form (with a cold protocol's cold ids too)."""
    document: dict[str, Any] = {"dataset": dataset.name, "protocol": split.protocol}
    if split.seed is not None:
        document["seed"] = split.seed
    if split.protocol == "mixed":  # the warm part is drawn per user: only the explicit form reproduces it
        explicit = True
        for key in COLUMNS:
            groups = getattr(split, key)
            if any(len(groups[part]) for part in PARTS):
                document[key] = {part: _ids(dataset, COLUMNS[key])[groups[part]].tolist() for part in PARTS}
    key = COLD_KEYS.get(split.protocol)
    if key is not None:
        groups, ids = getattr(split, key), _ids(dataset, COLUMNS[key])
        document[key] = {part: ids[groups[part]].tolist() for part in PARTS}
        compact = cold_split(dataset, split.protocol, groups, split.seed)
        explicit = explicit or not all(np.array_equal(compact.part(p), split.part(p)) for p in ALL_PARTS)
    if key is None or explicit:
        for part in ALL_PARTS:
            pairs = split.part(part)
            document[part] = np.stack([dataset.user_ids[pairs[:, 0]], dataset.item_ids[pairs[:, 1]]], 1).tolist()
    return document


def load_document(path: str | Path) -> dict[str, Any]:
    """Read a split file and check it against the schema; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: split file not found")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON: line {err.lineno} column {err.colno}: {err.msg}") from None
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(SCHEMA).iter_errors(_abridged(document)))
    if error is not None:
        key = error.json_path.removeprefix("$").removeprefix(".") or "(top level)"
        message = error.message if len(error.message) <= 200 else error.message[:200] + "..."
        raise DataError(f"{path}: key {key!r}: {message}")
    return document


def _abridged(document: Any) -> Any:
    """``document`` with each pair list whose pairs are all ``[int, int]`` cut to its first pair.

    jsonschema checks every element in Python (about 50 µs a pair: a minute for ML-1M), and such a list
    is valid exactly when its first pair is; any other list is kept whole so the error points at its element.
    """
    if not isinstance(document, dict):
        return document
    short = {k: v[:1] for k, v in document.items()
             if k in ALL_PARTS and isinstance(v, list)
             and all(type(p) is list and len(p) == 2 and type(p[0]) is int and type(p[1]) is int for p in v)}
    return {**document, **short}


def read_split(path: str | Path, dataset: Dataset) -> Split:
    """Read and validate a split file for ``dataset`` (the rules of the module docstring)."""
    document = load_document(path)
    where = lambda key: f"{path}: key {key!r}"  # noqa: E731
    if document.get("dataset", dataset.name) != dataset.name:
        raise DataError(f"{where('dataset')}: the split is for {document['dataset']!r}, not for {dataset.name!r}")
    protocol, key = document["protocol"], COLD_KEYS.get(document["protocol"])
    if protocol == "mixed":
        return _nonempty(_mixed(document, dataset, where), where)
    for other in COLD_KEYS.values():
        if other in document and other != key:
            raise DataError(f"{where(other)}: protocol {protocol} takes no {other}"
                            + (f" (its cold ids are {key})" if key else " (a warm split has no cold ids)"))
    if "train" not in document and key not in document:
        raise DataError(f"{where('protocol')}: protocol {protocol} needs the train/valid/test lists"
                        + (f" or {key}" if key else " (a warm split cannot be given as cold ids)"))
    groups = None
    if key in document:
        groups = {part: _cold_ids(document, key, part, dataset, where) for part in PARTS}
        _disjoint(groups["valid"], groups["test"], where(f"{key}.valid"),
                  f"{ENTITIES[COLUMNS[key]]} ids in both {key}.valid and {key}.test", _ids(dataset, COLUMNS[key]).take)
    if "train" in document:
        split = _explicit(document, dataset, groups, where)
    else:
        split = cold_split(dataset, protocol, groups, document.get("seed"))
    return _nonempty(split, where)


def _nonempty(split: Split, where: Where) -> Split:
    for part in ALL_PARTS:
        if len(split.part(part)) == 0:
            raise DataError(f"{where(part)}: the {part} part of this {split.protocol} split is empty")
    return split


def _mixed(document: dict, dataset: Dataset, where: Where) -> Split:
    """A mixed split (explicit form with ``cold_items`` and maybe ``cold_users``): the explicit form's rules,
    no cold entity in train, a pair with a cold entity in that entity's part, no pair of a cold user with a
    cold item."""
    if "train" not in document or "cold_items" not in document:
        raise DataError(f"{where('protocol')}: protocol mixed needs the train/valid/test lists and cold_items "
                        "(cold_users too when users are cold)")
    parts = _listed_parts(document, dataset, where)
    groups = {}
    for key, column in COLUMNS.items():
        groups[key] = ({part: _cold_ids(document, key, part, dataset, where) for part in PARTS} if key in document
                       else {part: np.empty(0, dtype=np.int64) for part in PARTS})
        ids, what = _ids(dataset, column).take, f"{ENTITIES[column]} ids"
        _disjoint(groups[key]["valid"], groups[key]["test"], where(f"{key}.valid"), f"{what} in both {key}.valid and "
                  f"{key}.test", ids)
        for part in PARTS:
            _disjoint(groups[key][part], parts["train"][:, column], where(f"{key}.{part}"),
                      f"{what} both cold and warm (in {key}.{part} and in train)", ids)
            other = groups[key][PARTS[1 - PARTS.index(part)]]
            _disjoint(other, parts[part][:, column], where(part), f"{what} of the other part's {key} in {part}", ids)
    cold_users = np.concatenate(list(groups["cold_users"].values()))
    cold_items = np.concatenate(list(groups["cold_items"].values()))
    for part in PARTS:
        both = parts[part][np.isin(parts[part][:, 0], cold_users) & np.isin(parts[part][:, 1], cold_items)]
        if len(both):
            raise DataError(f"{where(part)}: pairs of a cold user with a cold item (no sub-protocol ranks them): "
                            f"{_few(np.stack([dataset.user_ids[both[:, 0]], dataset.item_ids[both[:, 1]]], 1))}")
    return Split("mixed", document.get("seed"), parts["train"], parts["valid"], parts["test"],
                 groups["cold_users"], groups["cold_items"])


def _explicit(document: dict, dataset: Dataset, groups: dict[str, np.ndarray] | None, where: Where) -> Split:
    """The explicit form (:func:`_listed_parts`); with a cold protocol, a part's pairs all have its cold
    entities and no cold entity is in train."""
    parts = _listed_parts(document, dataset, where)
    protocol, key = document["protocol"], COLD_KEYS.get(document["protocol"])
    empty = {part: np.empty(0, dtype=np.int64) for part in PARTS}
    if key is None:
        return Split(protocol, document.get("seed"), parts["train"], parts["valid"], parts["test"], empty, empty)
    column = COLUMNS[key]
    ids, what = _ids(dataset, column).take, f"{ENTITIES[column]} ids"
    if groups is None:
        groups = {part: np.unique(parts[part][:, column]) for part in PARTS}
        _disjoint(groups["valid"], groups["test"], where("valid"), f"{what} in both valid and test", ids)
    for part in PARTS:
        outside = np.setdiff1d(parts[part][:, column], groups[part])
        if len(outside):
            raise DataError(f"{where(part)}: {what} {_few(ids(outside))} are not in {key}.{part}")
        cold = f"{key}.{part}" if key in document else part
        _disjoint(groups[part], parts["train"][:, column], where(cold),
                  f"{what} both cold and warm (in {cold} and in train)", ids)
    cold = {"cold_users": empty, "cold_items": empty, key: groups}
    return Split(protocol, document.get("seed"), parts["train"], parts["valid"], parts["test"], **cold)


def _listed_parts(document: dict, dataset: Dataset, where: Where) -> dict[str, np.ndarray]:
    """The explicit form's parts: pairs as listed, each once, all interactions of ``dataset``, disjoint."""
    parts = {part: _pairs(document, part, dataset, where) for part in ALL_PARTS}
    keys = {part: pairs[:, 0] * dataset.num_items + pairs[:, 1] for part, pairs in parts.items()}
    interactions = dataset.interactions[:, 0] * dataset.num_items + dataset.interactions[:, 1]
    show = lambda k: np.stack([dataset.user_ids[k // dataset.num_items], dataset.item_ids[k % dataset.num_items]], 1)  # noqa: E731
    for part in ALL_PARTS:
        unique, counts = np.unique(keys[part], return_counts=True)
        if (counts > 1).any():
            raise DataError(f"{where(part)}: pairs listed more than once: {_few(show(unique[counts > 1]))}")
        foreign = keys[part][~np.isin(keys[part], interactions)]
        if len(foreign):
            raise DataError(f"{where(part)}: pairs that are not interactions of {dataset.name} "
                            f"(with this rating_threshold): {_few(show(foreign))}")
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        _disjoint(keys[a], keys[b], where(a), f"pairs in both {a} and {b}", show)
    return parts


def _cold_ids(document: dict, key: str, part: str, dataset: Dataset, where: Where) -> np.ndarray:
    """Sorted indices of the cold ids of ``part``, each listed once and all known."""
    values = _int64(document[key][part], where(f"{key}.{part}"))
    unique, counts = np.unique(values, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{where(f'{key}.{part}')}: ids listed more than once: {_few(unique[counts > 1])}")
    return np.sort(_indices(values, dataset, COLUMNS[key], where(f"{key}.{part}")))


def _pairs(document: dict, part: str, dataset: Dataset, where: Where) -> np.ndarray:
    """A part's [user, item] id pairs as an int64 [n, 2] array of indices, in the file's order."""
    pairs = _int64(document[part], where(part)).reshape(-1, 2)
    return np.stack([_indices(pairs[:, column], dataset, column, where(part)) for column in (0, 1)], 1)


def _int64(values: list, where: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.int64)
    except OverflowError:
        raise DataError(f"{where}: an id does not fit in 64 bits") from None


def _indices(values: np.ndarray, dataset: Dataset, column: int, where: str) -> np.ndarray:
    """Original user (``column`` 0) or item (1) ids -> indices; unknown ids are an error."""
    known = _ids(dataset, column)
    order = np.argsort(known)
    index = order[np.searchsorted(known, values, sorter=order).clip(max=len(known) - 1)]
    unknown = known[index] != values
    if unknown.any():
        entity = ENTITIES[column]
        raise DataError(f"{where}: unknown {entity} ids {_few(np.unique(values[unknown]))}: not {entity}s of "
                        f"{dataset.name} (only {entity}s with a rating >= rating_threshold are indexed)")
    return index


def _disjoint(a: np.ndarray, b: np.ndarray, where: str, what: str, show: Callable[[np.ndarray], np.ndarray]) -> None:
    """Raise ``where: what: values`` if ``a`` and ``b`` share values, shown by ``show`` (indices -> ids)."""
    common = np.intersect1d(a, b)
    if len(common):
        raise DataError(f"{where}: {what}: {_few(show(common))}")


def _ids(dataset: Dataset, column: int) -> np.ndarray:
    """Original user (``column`` 0) or item (1) id of each index."""
    return dataset.user_ids if column == 0 else dataset.item_ids


def _few(values: np.ndarray) -> str:
    """The first few values, and how many more there are."""
    shown = ", ".join(json.dumps(v) for v in values[:SHOWN].tolist())
    return shown + (f" and {len(values) - SHOWN} more" if len(values) > SHOWN else "")
