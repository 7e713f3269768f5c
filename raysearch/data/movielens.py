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
from raysearch.data.readers import read_ratings, read_table, to_int
from raysearch.errors import ConfigError, DataError

AGE_GROUPS = {1: "under 18", 18: "18-24", 25: "25-34", 35: "35-44", 45: "45-49", 50: "50-55", 56: "56+"}
ML1M_OCCUPATIONS = (
    "other", "educator", "artist", "administrator", "student", "customer service", "healthcare",
    "executive", "farmer", "homemaker", "K-12 student", "lawyer", "programmer", "retired", "marketing",
    "scientist", "self-employed", "engineer", "tradesman", "none", "writer",
)
NO_GENRES = "(no genres listed)"  # ML-20M/25M's genres value for a movie without any
ANONYMOUS = "anonymous"  # the one user field of sets without user attributes: one shared token for every user
_YEAR_IN_TITLE = re.compile(r"\s*\((\d{4})\)\s*$")


@dataclass(frozen=True)
class Dataset:
    """Implicit-feedback interactions over contiguous user/item indices, with attribute fields."""

    name: str
    user_ids: np.ndarray  # int64 [num_users]: original id of each user index
    item_ids: np.ndarray  # int64 [num_items]: original id of each item index
    interactions: np.ndarray  # int64 [n, 2]: unique (user index, item index) positives
    user_fields: tuple[Field, ...]  # gender, age, occupation, zip_region (sets without them: anonymous)
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


def load_dataset(name: str, directory: Path, rating_threshold: float = 0.0, text_buckets: int = 1024,
                 year_spans: Sequence[int] = (5,)) -> Dataset:
    """Load a MovieLens set (or a synthetic one in ML-25M's format) from the folder holding its files.

    ``year_spans``: the widths in years of the ``year`` field's tokens, one token per width (5: "1995-1999",
    1: "1997"); one width makes the field categorical, several a bag of one token per width."""
    loaders = {"ml-100k": _load_ml100k, "ml-1m": _load_ml1m, "ml-10m": _load_ml10m, "ml-20m": _load_ml25m,
               "ml-25m": _load_ml25m, "synthetic": _load_ml25m}
    if name not in loaders:
        raise DataError(f"unknown dataset {name!r}; expected one of {', '.join(loaders)}")
    users, items, ratings, has_time = loaders[name](Path(directory))
    return _index(name, users, items, ratings, has_time, rating_threshold, text_buckets, tuple(year_spans))


def load_for(config: Any, data_dir: str | Path | None = None, download: bool = False) -> Dataset:
    """The dataset a config names (its ``dataset``, ``rating_threshold``, ``text_buckets``, ``year_spans`` and
    attribute fields), from ``data_dir`` (see :func:`~raysearch.data.downloads.data_root`), fetched first if asked
    and missing."""
    folder = dataset_dir(config.dataset, data_root(data_dir), download=download)
    dataset = load_dataset(config.dataset, folder, config.rating_threshold, config.text_buckets, config.year_spans)
    return dataset.with_fields(config.user_fields, config.item_fields)


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
    return users, items, read_ratings(root / "u.data", "\t", (4,)), True


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
        return users, items, read_ratings(root / "ratings.dat", "::", (4,)), True
    ratings = read_ratings(root / "ratings.csv", ",", (3, 4), header="UserID")
    return users, items, ratings, ratings.attrs["width"] == 4


def _load_ml10m(root: Path) -> tuple[None, pd.DataFrame, pd.DataFrame, bool]:
    path = root / "movies.dat"
    items = _movies(read_table(path, "::", (3,), "latin-1"), path)
    return None, items, read_ratings(root / "ratings.dat", "::", (4,)), True


def _load_ml25m(root: Path) -> tuple[None, pd.DataFrame, pd.DataFrame, bool]:
    """ML-20M and ML-25M (and the synthetic sets written in their format): quoted CSV with a header line."""
    path = root / "movies.csv"
    return None, _movies(_read_csv(path, ("movieId", "title", "genres")), path), \
        read_ratings(root / "ratings.csv", ",", (4,), header="userId"), True


def _movies(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``id, title (year), genre|genre`` rows; ``(no genres listed)`` is an empty bag."""
    genres = raw[2].str.split("|", regex=False).map(lambda bag: [g for g in bag if g and g != NO_GENRES])
    return _unique_ids(pd.DataFrame({"id": to_int(raw, 0, path, "movie id"), "title": raw[1],
                                     "year": raw[1].map(_title_year), "genres": genres}), path, "movie")


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """A quoted UTF-8 CSV with exactly ``columns`` as string columns 0.., indexed by line number (a title with a
    line break inside its quotes shifts the numbers after it)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8", engine="c")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not valid utf-8 text") from None
    except (ValueError, pd.errors.ParserError) as err:
        where = re.search(r"line (\d+)", str(err))
        raise DataError(f"{path}{f', line {where[1]}' if where else ''}: not a CSV table of "
                        f"{', '.join(columns)} ({str(err).strip().splitlines()[-1]})") from None
    if tuple(frame.columns) != columns:
        raise DataError(f"{path}, line 1: expected the header {','.join(columns)}, found {','.join(frame.columns)}")
    frame.columns = range(len(columns))
    frame.index = np.arange(2, len(frame) + 2)
    return frame


def _unique_ids(frame: pd.DataFrame, path: Path, what: str) -> pd.DataFrame:
    """Attribute rows (indexed by line); an id listed twice is an error, as either row's attributes could be meant."""
    repeated = frame["id"].duplicated()
    if repeated.any():
        line = int(frame.index[repeated.to_numpy().argmax()])
        first = int(frame.index[(frame["id"] == frame.at[line, "id"]).to_numpy().argmax()])
        raise DataError(f"{path}, line {line}: {what} id {frame.at[line, 'id']} is already listed on line {first}")
    return frame


def _index(name: str, users: pd.DataFrame | None, items: pd.DataFrame, ratings: pd.DataFrame, has_time: bool,
           threshold: float, text_buckets: int, year_spans: tuple[int, ...]) -> Dataset:
    """The thresholded, de-duplicated pairs over contiguous indices, with the fields; ``users`` None: the set has
    no user attributes, and every user gets the one ``anonymous`` field (the same unknown token for all)."""
    path = ratings.attrs["path"]
    known_ids = [("item", items["id"], "item")] + ([("user", users["id"], "user")] if users is not None else [])
    for column, known, what in known_ids:
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
    items = items.set_index("id").loc[item_ids]
    pairs = np.stack([np.searchsorted(user_ids, kept["user"]), np.searchsorted(item_ids, kept["item"])], 1)
    titles = items["title"].str.replace(_YEAR_IN_TITLE, "", regex=True)
    years = items["year"].astype("Int64")
    return Dataset(
        name=name, user_ids=user_ids, item_ids=item_ids, interactions=pairs.astype(np.int64),
        user_fields=_user_fields(users, user_ids),
        item_fields=(
            features.multi("genres", items["genres"].tolist()),
            _year_field(years, year_spans),
            features.hashed_text("title", titles.tolist(), text_buckets),
        ),
        item_titles=tuple(items["title"].tolist()),
        has_timestamps=has_time,
    )


def _user_fields(users: pd.DataFrame | None, user_ids: np.ndarray) -> tuple[Field, ...]:
    if users is None:
        return (features.categorical(ANONYMOUS, [""] * len(user_ids)),)
    users = users.set_index("id").loc[user_ids]
    return (
        features.categorical("gender", users["gender"].tolist()),
        features.categorical("age", users["age"].tolist()),
        features.categorical("occupation", users["occupation"].tolist()),
        features.categorical("zip_region", users["zip"].map(_zip_region).tolist()),
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


def _year_field(years: pd.Series, spans: tuple[int, ...]) -> Field:
    """Each year as one token per span width: "1997" (width 1), "1995-1999" (width 5); no token when unknown."""
    def token(year: int, span: int) -> str:
        return str(year) if span == 1 else f"{year // span * span}-{year // span * span + span - 1}"
    bags = [[] if pd.isna(y) else [token(int(y), span) for span in spans] for y in years]
    if len(spans) == 1:
        return features.categorical("year", [bag[0] if bag else "" for bag in bags])
    return features.multi("year", bags)


def _zip_region(code: str) -> str:
    """US zip codes start with their region digit 0-9; anything else (e.g. Canadian) is 'other'."""
    code = code.strip()
    return code[0] if code[:1].isdigit() else "other"
