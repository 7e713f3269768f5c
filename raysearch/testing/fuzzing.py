"""Fuzz targets for user input: search-space YAML, ``--set`` values, data files and model files.

A target is a hypothesis strategy of malformed inputs and a check that each input either passes
validation or raises the project's own error naming the file (and key or line). Any other exception,
a message without the file, or a YAML tag that runs code fails the check. ``tests/test_fuzz.py`` runs
every target with 60 derandomized cases; ``benchmarks/fuzz.py`` runs 1,000 each and counts them.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import io
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import yaml
from hypothesis import strategies as st

from raysearch.config import Scaling, TrainConfig, key_types
from raysearch.data.movielens import load_dataset
from raysearch.errors import ConfigError, DataError
from raysearch.export import load_model
from raysearch.search.space import PARAM_TYPES, Experiment, Scheduler, load_space, parse_space
from raysearch.train.checkpoint import make_checkpoint
from raysearch.train.fusion_gcn import build_model

MARKER = "{MARKER}"  # replaced by a path in the case's folder: a YAML tag that runs code would create it


@dataclass(frozen=True)
class Target:
    name: str
    what: str
    cases: st.SearchStrategy
    check: Callable[[Any], str]  # "accepted" or "rejected"; raises on a traceback or an unclear error


def _expect_clear(error: Exception, folder: Path) -> str:
    """A rejection is one line naming a file in ``folder`` first; a line number it gives exists in that file."""
    message = str(error)
    assert "\n" not in message, f"more than one line: {message}"
    named = re.match(rf"({re.escape(str(folder))}/[^:,]+)(?:, line (\d+))?:", message)
    assert named, f"no file named: {message}"
    if named[2]:
        assert 1 <= int(named[2]) <= Path(named[1]).read_bytes().count(b"\n") + 1, f"no such line: {message}"
    return "rejected"


dump = functools.partial(yaml.dump, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), allow_unicode=True,
                         sort_keys=False)  # libyaml's emitter when present: the cases come faster


# -- search-space YAML ----------------------------------------------------------------------------

EDGE_VALUES = st.sampled_from([
    0, -1, 1, 2, 7, 1.5, -0.5, 0.99, 1e-320, 1e308, 2**63, -2**63 - 1, 10**400, float("inf"), float("nan"), True,
    None, "", " ", "1e-3", "1.0e400", "nan", "-0", "\x00", "../x", "a/b", ".hidden", "x" * 300, "ndcg@²", "ndcg@١٠",
    "ndcg@010", "ndcg@10", "hit@20", "recall@0", "ml-1m", "user_cold", "bpr", "mean", "none", "SPREAD", "²", "٣", [],
    [10], [0, 5], [True], [2**70], {}, {"a": 1}])
JUNK = st.one_of(EDGE_VALUES, st.integers(-2**80, 2**80), st.floats(), st.text(max_size=8),
                 st.lists(st.integers(-3, 30), max_size=3),
                 st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
SECTIONS = {"experiment": Experiment, "scheduler": Scheduler, "resources": Scaling, "config": TrainConfig}
CONFIG_KEYS = list(key_types(TrainConfig.model))  # the full model's keys
VALID_SPACE = {
    "experiment": {"name": "fuzz", "num_samples": 2, "max_concurrent_trials": 1, "seed": 0},
    "scheduler": {"grace_period": 1, "reduction_factor": 2},
    "resources": {"workers_per_trial": 1, "cpus_per_worker": 1.0, "use_gpu": False, "num_to_keep": 1,
                  "max_failures": 0},
    "config": {"dataset": "ml-100k", "split": "warm", "epochs": 3, "metric": "ndcg@10", "topk": [10, 20]},
    "params": {"learning_rate": {"type": "loguniform", "low": 1e-3, "high": 1e-1},
               "num_layers": {"type": "randint", "low": 0, "high": 2},
               "temperature": {"type": "uniform", "low": 0.05, "high": 0.5},
               "embedding_dim": {"type": "choice", "values": [8, 16]}},
}
BOUND = st.one_of(st.integers(-5, 10), st.floats(-2, 2), JUNK)
PARAM_SPECS = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from([*PARAM_TYPES, "normal"]), "low": BOUND, "high": BOUND}),
    st.fixed_dictionaries({"type": st.just("choice"),
                           "values": st.one_of(st.lists(st.one_of(BOUND, JUNK), max_size=4), JUNK)}),
    st.dictionaries(st.sampled_from(["type", "low", "high", "values", "q"]),
                    st.one_of(st.sampled_from(list(PARAM_TYPES)), BOUND), max_size=4),
    JUNK,
)


@st.composite
def space_edit(draw: st.DrawFn) -> Callable[[dict], Any]:
    """One change to a document: a key set to a wrong value, removed, added, or a whole part replaced."""
    section = draw(st.sampled_from([*SECTIONS, "params", "extra"]))
    known = (CONFIG_KEYS if section in ("config", "params")
             else [f.name for f in dataclasses.fields(SECTIONS.get(section, Experiment))])
    key = draw(st.one_of(st.sampled_from(known), st.sampled_from(known), st.text(max_size=6), st.integers(-2, 2)))
    value = draw(PARAM_SPECS if section == "params" else JUNK)
    kind = draw(st.sampled_from(["set", "set", "set", "delete", "section", "root"]))

    def edit(document: Any) -> Any:
        if kind == "root":
            return value
        if not isinstance(document, dict):
            return document
        if kind == "section":
            document[section] = value
        elif kind == "delete":
            (document.get(section) if isinstance(document.get(section), dict) else document).pop(key, None)
        elif isinstance(document.setdefault(section, {}), dict):
            document[section][key] = value
        return document

    return edit


@st.composite
def space_documents(draw: st.DrawFn) -> Any:
    """A valid space with one to four edits."""
    document = copy.deepcopy(VALID_SPACE)
    for edit in draw(st.lists(space_edit(), min_size=1, max_size=draw(st.sampled_from([1, 1, 2, 4])))):
        document = edit(document)
    return document


TAGS = [f"!!python/object/apply:os.system ['touch {MARKER}']", f"!!python/object/new:pathlib.Path ['{MARKER}']",
        "!!python/name:os.system", "!!python/object:raysearch.config.TrainConfig {epochs: 1}",
        f"!!python/object/apply:builtins.exec [\"open('{MARKER}', 'w')\"]", "!!binary aGVsbG8=", "!!set {a, b}",
        "!!timestamp 2001-12-14", "!!omap [a: 1]", "!!float '1e400'", "!!int '0x1F'", "!custom x", "&a [*a]",
        "*undefined", "{a: 1, a: 2}", "? [a, b]\n: 1", "\t", "- x", "'unterminated", "%YAML 9.9\n---"]


@st.composite
def space_texts(draw: st.DrawFn) -> str:
    """YAML text: a (possibly edited) valid space with tags spliced in, bytes cut out or garbage added."""
    text = dump(draw(st.one_of(st.just(VALID_SPACE), space_documents())))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["tag", "tag", "value", "cut", "text"]))
        if kind == "tag":
            text = text[:at] + draw(st.sampled_from(TAGS)) + text[at:]
        elif kind == "value":  # a tagged value in place of the next value
            tag = draw(st.sampled_from(TAGS))
            text = text[:at] + re.sub(r": [^\n]*", lambda _: ": " + tag, text[at:], count=1)
        elif kind == "cut":
            text = text[:at] + text[at + draw(st.integers(1, 40)):]
        else:
            text = text[:at] + draw(st.text(max_size=6)) + text[at:]
    return text


def check_space(case: Any) -> str:
    """``load_space`` on the case written to a file: a SearchSpace, or ConfigError naming the file."""
    with tempfile.TemporaryDirectory() as folder:
        path, marker = Path(folder) / "space.yaml", Path(folder) / "marker"
        text = case if isinstance(case, str) else dump(case)
        path.write_text(text.replace(MARKER, str(marker)), encoding="utf-8")
        try:
            space = load_space(path)
        except ConfigError as err:
            assert not marker.exists(), "a YAML tag ran code"
            return _expect_clear(err, Path(folder))
        assert not marker.exists(), "a YAML tag ran code"
        (Path(folder) / space.experiment.name).mkdir()  # the experiment folder can be made
        assert parse_space(space.to_document(), "again") == dataclasses.replace(space, source="again")  # --resume
        return "accepted"


# -- --set key=value ------------------------------------------------------------------------------

SET_VALUES = st.one_of(
    st.sampled_from(["1", "2", "16", "0.5", "-1", "0", "1e-3", "1.0e400", "1e38", ".nan", "-.inf", "[10, 20]", "[10]",
                     "[]", "[1, x]", "{a: 1}", "null", "yes", "'", "[", "ndcg@²", "ndcg@20", "ndcg@10", "bpr", "mean",
                     "none", "mf", "lightgcn", "ml-1m", "item_cold", "!!python/name:os.system", "!!int abc",
                     "!!timestamp x", "!!bool maybe", "9" * 30, "2" * 4400, " ", "=", "a=b", "[" * 600]),
    st.text(max_size=8),
)
ASSIGNMENTS = st.lists(
    st.one_of(st.builds("{}={}".format, st.sampled_from(CONFIG_KEYS), SET_VALUES),
              st.builds("{}={}".format, st.sampled_from(CONFIG_KEYS), SET_VALUES),
              st.builds("{}={}".format, st.text(max_size=6), SET_VALUES), st.text(max_size=10)),
    min_size=1, max_size=3)


def check_overrides(assignments: list[str]) -> str:
    """``--set`` values on top of the defaults: a config that survives a YAML round trip, or ConfigError."""
    try:
        config = TrainConfig().with_overrides(assignments)
    except ConfigError as err:
        assert str(err).startswith("--set: ") and "\n" not in str(err), f"unclear: {err}"
        return "rejected"
    assert TrainConfig.from_dict(yaml.safe_load(config.to_yaml())) == config
    return "accepted"


# -- data files -----------------------------------------------------------------------------------

GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]
USERS = [(1, 24, "M", "technician", "85711", 10), (2, 53, "F", "other", "94043", 1),
         (3, 23, "M", "writer", "32067", 20), (4, 24, "M", "technician", "43537", 17),
         (5, 33, "F", "other", "T8H1N", 0), (6, 42, "M", "executive", "98101", 7)]  # ..., zip, ML-1M job code
ITEMS = [(i, f"Film {i} ({1990 + i})", f"01-Jan-{1990 + i}", [g for g in range(19) if (i + g) % 5 == 0])
         for i in range(1, 9)]  # id, title, date, genre numbers
RATINGS = [(u, i, (u * i) % 5 + 1, 880000000 + 7 * u + i) for u in range(1, 7) for i in range(1, 9) if (u + i) % 3]


LAYOUTS = ("ml-100k", "ml-1m", "ml-1m-csv", "ml-10m", "ml-25m")


def base_files(layout: str) -> dict[str, bytes]:
    """Small, valid GroupLens files: ``ml-100k``, ``ml-1m`` with ratings.dat, ``ml-1m-csv``, ``ml-10m`` or
    ``ml-25m`` (also ML-20M's format)."""
    lines = lambda rows: ("\n".join(rows) + "\n").encode("latin-1")  # noqa: E731
    if layout == "ml-100k":
        return {
            "u.genre": lines([f"{g}|{n}" for n, g in enumerate(GENRES)] + [""]),
            "u.occupation": lines(["executive", "other", "technician", "writer"]),
            "u.user": lines([f"{u}|{age}|{g}|{occ}|{zip_}" for u, age, g, occ, zip_, _ in USERS]),
            "u.item": lines([f"{i}|{title}|{date}||http://example.org/{i}|"
                             + "|".join("1" if n in genres else "0" for n in range(19))
                             for i, title, date, genres in ITEMS]),
            "u.data": lines([f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in RATINGS]),
        }
    genre_names = lambda genres: "|".join(GENRES[n] for n in genres)  # noqa: E731
    if layout == "ml-10m":
        return {"movies.dat": lines([f"{i}::{title}::{genre_names(genres) or '(no genres listed)'}"
                                     for i, title, _, genres in ITEMS]),
                "ratings.dat": lines([f"{u}::{i}::{r / 2 + 0.5}::{t}" for u, i, r, t in RATINGS])}
    if layout == "ml-25m":
        return {"movies.csv": lines(["movieId,title,genres"] + [f'{i},"{title}, The",{genre_names(genres)}'
                                                                 for i, title, _, genres in ITEMS]),
                "ratings.csv": lines(["userId,movieId,rating,timestamp"] + [f"{u},{i},{r},{t}" for u, i, r, t in RATINGS])}
    files = {
        "users.dat": lines([f"{u}::{g}::{min(age // 10 * 10 + 5, 56)}::{code}::{zip_}"
                            for u, age, g, _, zip_, code in USERS]),
        "movies.dat": lines([f"{i}::{title}::{'|'.join(GENRES[n] for n in genres) or 'Drama'}"
                             for i, title, _, genres in ITEMS]),
    }
    if layout == "ml-1m":
        return {**files, "ratings.dat": lines([f"{u}::{i}::{r}::{t}" for u, i, r, t in RATINGS])}
    return {**files, "ratings.csv": lines(["UserID,MovieID,Rating"] + [f"{u},{i},{r}" for u, i, r, _ in RATINGS])}


FIELD_VALUES = st.one_of(
    st.sampled_from(["", " ", "abc", "-1", "0", "1.5", "1e3", "inf", "-inf", "nan", "NaN", "9" * 30, "1" * 19, "0x10",
                     "+3", " 7 ", "\x00", "１", "٣", "²", "ü", "\ufeff1", "999", "7", "F", "astronaut", "5", "1|2",
                     "::"]),
    st.text(max_size=6),
)
RAW_BYTES = st.sampled_from([b"\xff\xfe", b"\xef\xbb\xbf", b"\x00", b"\r", b"\r\n", b"\n", b"\n\n", b"\x80abc", b"\t",
                             b"|", b"::", b","])


@st.composite
def data_cases(draw: st.DrawFn) -> tuple[str, dict[str, bytes]]:
    """Valid files of one layout with one to three edits to one file each (rows, separators, fields, bytes)."""
    layout = draw(st.sampled_from(LAYOUTS))
    files = base_files(layout)
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(sorted(files)))
        data = files[name]
        rows = data.split(b"\n")
        row = draw(st.integers(0, len(rows) - 1))
        sep = {"u.data": b"\t"}.get(name, b"::" if name.endswith(".dat") else b"," if name.endswith(".csv") else b"|")
        kind = draw(st.sampled_from(["field", "field", "field", "separator", "drop", "duplicate", "truncate", "bytes",
                                     "empty", "swap", "unknown_id", "crlf"]))
        if kind == "field":
            fields = rows[row].split(sep)
            fields[draw(st.integers(0, len(fields) - 1))] = draw(FIELD_VALUES).encode("utf-8")
            rows[row] = sep.join(fields)
        elif kind == "separator":
            rows[row] = rows[row].replace(sep, draw(st.sampled_from([b" ", b";", b",", b"\t", b"|", b":", b""])))
        elif kind == "drop":
            del rows[row]
        elif kind == "duplicate":
            rows.insert(row, rows[row])
        elif kind == "swap":
            fields = rows[row].split(sep)
            rows[row] = sep.join(fields[::-1])
        elif kind == "unknown_id":
            rows.append(sep.join([b"7", b"9", b"5", b"1"][: len(rows[0].split(sep))]))
        if kind in ("truncate", "bytes", "empty", "crlf"):
            at = draw(st.integers(0, len(data)))
            data = {"truncate": data[:at], "empty": draw(st.sampled_from([b"", b"\n", b"  \n\n"])),
                    "crlf": data.replace(b"\n", b"\r\n"), "bytes": data[:at] + draw(RAW_BYTES) + data[at:]}[kind]
        else:
            data = b"\n".join(rows)
        files[name] = data
    return layout, files


def check_data(case: tuple[str, dict[str, bytes]]) -> str:
    """``load_dataset`` on the files: a consistent Dataset, or DataError naming the file (and a real line)."""
    layout, files = case
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root) / layout
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data)
        try:
            dataset = load_dataset(layout.removesuffix("-csv"), folder)
        except DataError as err:
            return _expect_clear(err, folder)
        pairs = dataset.interactions
        assert len(pairs) and len({tuple(p) for p in pairs.tolist()}) == len(pairs)
        assert pairs[:, 0].max() < dataset.num_users and pairs[:, 1].max() < dataset.num_items
        assert all(len(f.offsets) == dataset.num_users + 1 and f.offsets[-1] == len(f.tokens)
                   for f in dataset.user_fields)
        return "accepted"


# -- model files ----------------------------------------------------------------------------------

@functools.cache
def base_checkpoint() -> bytes:
    """An (untrained) model of the small ml-100k files, serialised as ``raysearch train`` saves it."""
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root) / "ml-100k"
        folder.mkdir()
        for name, data in base_files("ml-100k").items():
            (folder / name).write_bytes(data)
        dataset = load_dataset("ml-100k", folder, text_buckets=16)
    config = TrainConfig.from_dict({"embedding_dim": 4, "num_layers": 1, "text_buckets": 16, "topk": [5],
                                    "metric": "ndcg@5"})
    checkpoint = make_checkpoint(build_model(config, dataset), config, dataset, torch.as_tensor(dataset.interactions),
                                 1, {"valid_ndcg@5": 0.5})
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


@st.composite
def model_files(draw: st.DrawFn) -> bytes:
    """A saved checkpoint cut short, with bytes overwritten, or with entries removed or replaced."""
    kind = draw(st.sampled_from(["truncate", "overwrite", "entry"]))
    data = base_checkpoint()
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    if kind == "overwrite":
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at + draw(st.integers(1, 16)):]
    checkpoint = torch.load(io.BytesIO(data), weights_only=True)
    key = draw(st.sampled_from(sorted(checkpoint)))
    if draw(st.booleans()):
        del checkpoint[key]
    else:
        checkpoint[key] = draw(st.one_of(st.none(), st.integers(), st.text(max_size=4), st.just(torch.zeros(2, 3)),
                                         st.just({}), st.just([])))
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


def check_model(data: bytes) -> str:
    """``load_model`` plus one recommendation: results, or DataError naming the file."""
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder).resolve()
        (folder / "model.pt").write_bytes(data)
        try:
            model = load_model(folder)
        except DataError as err:
            return _expect_clear(err, folder)
        assert len(model.recommend(1, 3)) == len(model.recommend_for_attributes({"gender": "F"}, 3)) == 3
        return "accepted"


TARGETS = (
    Target("search_space_documents", "search-space YAML: documents with wrong types, keys, bounds, sections",
           space_documents(), check_space),
    Target("search_space_text", "search-space YAML text: python/other tags, aliases, cuts, garbage", space_texts(),
           check_space),
    Target("set_overrides", "`--set key=value` lists: unknown keys, bad values, malformed pairs", ASSIGNMENTS,
           check_overrides),
    Target("data_files", "ML-100K / 1M / 10M / 25M files: bad fields, separators, rows, bytes, encodings, duplicates",
           data_cases(), check_data),
    Target("model_files", "exported model.pt: truncated, overwritten bytes, missing or wrong entries", model_files(),
           check_model),
)
