"""MovieLens loaders: raw GroupLens files -> one indexed :class:`Dataset` with attribute fields.

Only users and items with at least one (thresholded) interaction are indexed, as RecBole does, so
full-ranking numbers compare with its benchmarks. Duplicate (user, item) ratings are merged (kept once); a
user or item id listed twice in an attribute file is an error naming both lines.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from raysearch.data import features
from raysearch.data.downloads import data_root, dataset_dir
from raysearch.data.features import Field
from raysearch.errors import ConfigError, DataError

AGE_GROUPS = {1: "under 18", 18: "18-24", 25: "25-34", 35: "35-44", 45: "45-49", 50: "50-55", 56: "56+"}
ML1M_OCCUPATIONS = (
    "other", "educator", "artist", "administrator", "student", "customer service", "healthcare",
    "executive", "farmer", "homemaker", "K-12 student", "lawyer", "programmer", "retired", "marketing",
    "scientist", "self-employed", "engineer", "tradesman", "none", "writer",
)
_YEAR_IN_TITLE = re.compile(r"\s*\((\d{4})\)\s*$")


@dataclass(frozen=True)
class Dataset:
    """Implicit-feedback interactions over contiguous user/item indices, with attribute fields."""

    name: str
    user_ids: np.ndarray  # int64 [num_users]: original id of each user index
    item_ids: np.ndarray  # int64 [num_items]: original id of each item index
    interactions: np.ndarray  # int64 [n, 2]: unique (user index, item index) positives
    user_fields: tuple[Field, ...]  # gender, age, occupation, zip_region
    item_fields: tuple[Field, ...]  # genres, year, title
    item_titles: tuple[str, ...]  # display title per item index
    has_timestamps: bool  # False for our ML-1M copy: no time-ordered split is possible

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def with_fields(self, user_fields: Sequence[str], item_fields: Sequence[str]) -> "Dataset":
        """This dataset with only the named attribute fields, in that order; an unknown name is a ConfigError
        naming the key, the value and the fields there are."""
        chosen = []
        for key, names, fields in (("user_fields", user_fields, self.user_fields),
                                   ("item_fields", item_fields, self.item_fields)):
            by_name = {f.name: f for f in fields}
            unknown = [n for n in names if n not in by_name]
            if unknown:
                raise ConfigError(f"key {key!r}: {self.name} has no field {unknown[0]!r}; its fields: "
                                  f"{', '.join(by_name)}")
            chosen.append(tuple(by_name[n] for n in names))
        return dataclasses.replace(self, user_fields=chosen[0], item_fields=chosen[1])


def load_dataset(name: str, directory: Path, rating_threshold: float = 0.0, text_buckets: int = 1024) -> Dataset:
    """Load ``ml-100k`` or ``ml-1m`` from the folder holding its original files."""
    loaders = {"ml-100k": _load_ml100k, "ml-1m": _load_ml1m}
    if name not in loaders:
        raise DataError(f"unknown dataset {name!r}; expected one of {', '.join(loaders)}")
    users, items, ratings, has_time = loaders[name](Path(directory))
    return _index(name, users, items, ratings, has_time, rating_threshold, text_buckets)


def load_for(config: Any, data_dir: str | Path | None = None, download: bool = False) -> Dataset:
    """The dataset a config names (its ``dataset``, ``rating_threshold``, ``text_buckets`` and attribute fields),
    from ``data_dir`` (see :func:`~raysearch.data.downloads.data_root`), fetched first if asked and missing."""
    folder = dataset_dir(config.dataset, data_root(data_dir), download=download)
    dataset = load_dataset(config.dataset, folder, config.rating_threshold, config.text_buckets)
    return dataset.with_fields(config.user_fields, config.item_fields)


def read_table(path: Path, sep: str, widths: tuple[int, ...], encoding: str = "utf-8",
               header: str | None = None) -> pd.DataFrame:
    """Split a delimited text file into string columns indexed by 1-based line number.

    Every line must have the same number of fields, one of ``widths``; blank lines are skipped and a
    first line starting with ``header`` is treated as a header. Errors name the file and line.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        text = path.read_bytes().decode(encoding)  # lines end at "\n" only, as line numbers in editors and sed
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not valid {encoding} text") from None
    lines = pd.Series(text.split("\n"), index=np.arange(1, text.count("\n") + 2), dtype=object).str.rstrip("\r")
    lines = lines[lines.str.strip() != ""]
    if header is not None and len(lines) and lines.iloc[0].startswith(header):
        lines = lines.iloc[1:]
    if lines.empty:
        raise DataError(f"{path}: file is empty (no data lines)")
    parts = lines.str.split(sep, regex=False)
    counts = parts.str.len()
    expected = counts.iloc[0] if counts.iloc[0] in widths else widths[0]
    bad = counts != expected
    if bad.any():
        line = int(counts.index[bad.to_numpy().argmax()])
        raise DataError(f"{path}, line {line}: expected {expected} fields separated by {sep!r}, "
                        f"found {counts[line]}: {lines[line][:80]!r}")
    return pd.DataFrame(parts.tolist(), index=lines.index)


def to_int(frame: pd.DataFrame, column: int, path: Path, what: str) -> pd.Series:
    """Column ``column`` as int64; the first non-integer value (or one beyond 2**53) is reported with its line."""
    values = pd.to_numeric(frame[column].str.strip(), errors="coerce")
    bad = values.isna() | (values != values.round()) | ~(values.abs() < 2**53)  # floats are exact up to 2**53
    if bad.any():
        line = int(frame.index[bad.to_numpy().argmax()])
        raise DataError(f"{path}, line {line}: {what} {frame.at[line, column]!r} is not an integer")
    return values.astype(np.int64)


def _load_ml100k(root: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, bool]:
    genres = read_table(root / "u.genre", "|", (2,), "latin-1")[0].tolist()
    occupations = set(read_table(root / "u.occupation", "|", (1,), "latin-1")[0].str.strip())
    path = root / "u.user"
    raw = read_table(path, "|", (5,), "latin-1")
    unknown = ~raw[3].isin(occupations)
    if unknown.any():
        line = int(raw.index[unknown.to_numpy().argmax()])
        raise DataError(f"{path}, line {line}: occupation {raw.at[line, 3]!r} is not listed in u.occupation")
    users = _unique_ids(pd.DataFrame({
        "id": to_int(raw, 0, path, "user id"), "gender": raw[2],
        "age": to_int(raw, 1, path, "age").map(_age_group), "occupation": raw[3], "zip": raw[4],
    }), path, "user")
    path = root / "u.item"
    raw = read_table(path, "|", (5 + len(genres),), "latin-1")
    flags = raw.iloc[:, 5:].to_numpy() == "1"
    dates = pd.to_datetime(raw[2], format="%d-%b-%Y", errors="coerce")
    items = _unique_ids(pd.DataFrame({
        "id": to_int(raw, 0, path, "item id"), "title": raw[1],
        "year": dates.dt.year.astype("Int64").fillna(raw[1].map(_title_year)),
        "genres": [[g for g, on in zip(genres, row) if on] for row in flags],
    }), path, "item")
    path = root / "u.data"
    raw = read_table(path, "\t", (4,))
    return users, items, _ratings(raw, path), True


def _load_ml1m(root: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, bool]:
    path = root / "users.dat"
    raw = read_table(path, "::", (5,), "latin-1")
    occupation = to_int(raw, 3, path, "occupation code")
    if not occupation.between(0, len(ML1M_OCCUPATIONS) - 1).all():
        line = int(raw.index[(~occupation.between(0, len(ML1M_OCCUPATIONS) - 1)).to_numpy().argmax()])
        raise DataError(f"{path}, line {line}: occupation code {raw.at[line, 3]!r} is not in 0..20")
    users = _unique_ids(pd.DataFrame({
        "id": to_int(raw, 0, path, "user id"), "gender": raw[1],
        "age": to_int(raw, 2, path, "age group").map(_age_group),
        "occupation": occupation.map(dict(enumerate(ML1M_OCCUPATIONS))), "zip": raw[4],
    }), path, "user")
    path = root / "movies.dat"
    raw = read_table(path, "::", (3,), "latin-1")
    items = _unique_ids(pd.DataFrame({
        "id": to_int(raw, 0, path, "movie id"), "title": raw[1],
        "year": raw[1].map(_title_year), "genres": raw[2].str.split("|", regex=False),
    }), path, "movie")
    if (root / "ratings.dat").is_file():
        path = root / "ratings.dat"
        return users, items, _ratings(read_table(path, "::", (4,)), path), True
    path = root / "ratings.csv"
    raw = read_table(path, ",", (3, 4), header="UserID")
    return users, items, _ratings(raw, path), raw.shape[1] == 4


def _unique_ids(frame: pd.DataFrame, path: Path, what: str) -> pd.DataFrame:
    """Attribute rows (indexed by line); an id listed twice is an error, as either row's attributes could be meant."""
    repeated = frame["id"].duplicated()
    if repeated.any():
        line = int(frame.index[repeated.to_numpy().argmax()])
        first = int(frame.index[(frame["id"] == frame.at[line, "id"]).to_numpy().argmax()])
        raise DataError(f"{path}, line {line}: {what} id {frame.at[line, 'id']} is already listed on line {first}")
    return frame


def _ratings(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    frame = pd.DataFrame({"user": to_int(raw, 0, path, "user id"), "item": to_int(raw, 1, path, "item id"),
                          "rating": pd.to_numeric(raw[2], errors="coerce")})
    if frame["rating"].isna().any():
        line = int(frame.index[frame["rating"].isna().to_numpy().argmax()])
        raise DataError(f"{path}, line {line}: rating {raw.at[line, 2]!r} is not a number")
    frame.attrs["path"] = path
    return frame


def _index(name: str, users: pd.DataFrame, items: pd.DataFrame, ratings: pd.DataFrame, has_time: bool,
           threshold: float, text_buckets: int) -> Dataset:
    path = ratings.attrs["path"]
    for column, known, what in (("user", users["id"], "user"), ("item", items["id"], "item")):
        missing = ~ratings[column].isin(known)
        if missing.any():
            line = int(ratings.index[missing.to_numpy().argmax()])
            raise DataError(f"{path}, line {line}: {what} id {ratings.at[line, column]} "
                            f"is not in the {what} attribute file")
    kept = ratings[ratings["rating"] >= threshold].drop_duplicates(["user", "item"])
    if kept.empty:
        raise DataError(f"{path}: no rating is >= rating_threshold {threshold}")
    user_ids = np.sort(kept["user"].unique())
    item_ids = np.sort(kept["item"].unique())
    users = users.set_index("id").loc[user_ids]
    items = items.set_index("id").loc[item_ids]
    pairs = np.stack([np.searchsorted(user_ids, kept["user"]), np.searchsorted(item_ids, kept["item"])], 1)
    titles = items["title"].str.replace(_YEAR_IN_TITLE, "", regex=True)
    years = items["year"].astype("Int64")
    return Dataset(
        name=name, user_ids=user_ids, item_ids=item_ids, interactions=pairs.astype(np.int64),
        user_fields=(
            features.categorical("gender", users["gender"].tolist()),
            features.categorical("age", users["age"].tolist()),
            features.categorical("occupation", users["occupation"].tolist()),
            features.categorical("zip_region", users["zip"].map(_zip_region).tolist()),
        ),
        item_fields=(
            features.multi("genres", items["genres"].tolist()),
            features.categorical("year", [_year_bucket(y) for y in years]),
            features.hashed_text("title", titles.tolist(), text_buckets),
        ),
        item_titles=tuple(items["title"].tolist()),
        has_timestamps=has_time,
    )


def user_attribute_tokens(attributes: dict[str, str], fields: list[dict]) -> list[list[int]]:
    """Token bags for a new user's raw attributes, encoded as the loaders encode them.

    ``attributes`` uses the raw names ``gender``, ``age`` (years or an ML-1M age code), ``occupation``
    and ``zip``; ``fields`` are the vocabularies a checkpoint stores. A missing attribute is unknown.
    """
    raw = {"gender": "gender", "age": "age", "occupation": "occupation", "zip": "zip_region"}
    unknown = set(attributes) - set(raw)
    if unknown:
        raise DataError(f"unknown user attribute {sorted(unknown)[0]!r}; expected some of {', '.join(raw)}")
    values = {raw[k]: v.strip() for k, v in attributes.items()}
    if "age" in values:
        if not re.fullmatch(r"[0-9]{1,3}", values["age"]):
            raise DataError(f"user attribute age={values['age']!r} is not a whole number of years")
        values["age"] = _age_group(int(values["age"]))
    if "zip_region" in values:
        values["zip_region"] = _zip_region(values["zip_region"])
    bags = []
    for field in fields:
        value = values.get(field["name"])
        if value is not None and value not in field["vocab"]:
            raise DataError(f"user attribute {field['name']}={value!r} is unknown to the model; "
                            f"known values: {', '.join(field['vocab'][1:])}")
        bags.append([field["vocab"].index(value)] if value is not None else [0])
    return bags


def _age_group(age: int) -> str:
    """Map a raw age (ML-100K) or an ML-1M age code onto ML-1M's seven age groups."""
    return AGE_GROUPS[max(k for k in AGE_GROUPS if k <= max(age, 1))]


def _title_year(title: str) -> int | None:
    match = _YEAR_IN_TITLE.search(title)
    return int(match.group(1)) if match else None


def _year_bucket(year: object) -> str:
    return "" if pd.isna(year) else f"{int(year) // 5 * 5}-{int(year) // 5 * 5 + 4}"


def _zip_region(code: str) -> str:
    """US zip codes start with their region digit 0-9; anything else (e.g. Canadian) is 'other'."""
    code = code.strip()
    return code[0] if code[:1].isdigit() else "other"
