"""The README is true to the files: every path it names exists, and its model table is the registry."""

import re
from pathlib import Path

from raysearch.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_path_the_readme_names_exists():
    paths = set(re.findall(r"`((?:raysearch|tests|benchmarks|search_spaces|scripts|clusters|reports)/[\w./-]+)`",
                           README))
    paths |= set(re.findall(r"\]\(((?:reports|benchmarks)/[\w./-]+)\)", README))
    assert len(paths) > 20
    assert sorted(p for p in paths if not (ROOT / p.rstrip("/")).exists() and "<" not in p) == []


def test_model_table_rows_are_the_registrys():
    """A model the table lists has its registry description, in registry order (a new model needs no README
    change to pass; it adds its row when it is documented)."""
    rows = [(name, text) for name, text in re.findall(r"^\| `(\w+)` \| (.+?) \|", README, re.M) if name in MODELS]
    assert len(rows) >= 7 and rows == [(name, spec.description) for name, spec in MODELS.items()
                                       if name in dict(rows)]
