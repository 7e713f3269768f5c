"""Delimited MovieLens text files -> pandas frames indexed by 1-based line number; errors name file and line.

:func:`read_table` splits any file in Python (strings, exact line numbers, every malformed line reported).
:func:`read_ratings` reads the large all-numeric rating files with pandas' C parser first, and falls back on
:func:`read_table` for any file that parser does not read cleanly, so a bad file gets the same error either way.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from raysearch.errors import DataError

EXACT_INTEGERS = 2**53  # float64 holds every integer below this exactly


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


def read_ratings(path: Path, sep: str, widths: tuple[int, ...], header: str | None = None) -> pd.DataFrame:
    """``user, item, rating[, timestamp]`` lines as columns ``user``, ``item`` (int64 ids) and ``rating``, indexed
    by line number; ``attrs`` hold the ``path`` and the ``width`` (fields per line). The C parser reads 25M lines
    in seconds where :func:`read_table` takes minutes."""
    frame = _read_numeric(path, sep, widths, header)
    if frame is None:
        raw = read_table(path, sep, widths, header=header)
        frame = pd.DataFrame({"user": to_int(raw, 0, path, "user id"), "item": to_int(raw, 1, path, "item id"),
                              "rating": to_float(raw, 2, path, "rating")})
        frame.attrs["width"] = raw.shape[1]
    frame.attrs["path"] = path
    return frame


def to_float(frame: pd.DataFrame, column: int, path: Path, what: str) -> pd.Series:
    """Column ``column`` as float64; the first value that is not a number is reported with its line."""
    values = pd.to_numeric(frame[column].str.strip(), errors="coerce")
    if values.isna().any():
        line = int(frame.index[values.isna().to_numpy().argmax()])
        raise DataError(f"{path}, line {line}: {what} {frame.at[line, column]!r} is not a number")
    return values.astype(np.float64)


def _read_numeric(path: Path, sep: str, widths: tuple[int, ...], header: str | None) -> pd.DataFrame | None:
    """The C parser's reading of a clean file (integer ids below 2**53, numeric ratings, no blank line, no
    carriage return, one field count of ``widths``), or None for anything else. ``::`` is read as ``:`` with
    empty fields between, since the C parser takes one-character separators only."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    if b"\r" in data or not data.strip():
        return None
    skip = int(header is not None and data.startswith(header.encode()))
    try:
        frame = pd.read_csv(io.BytesIO(data), sep=sep[0], header=None, skiprows=skip, skip_blank_lines=False,
                            dtype=np.float64, engine="c")
    except (ValueError, pd.errors.ParserError):
        return None
    step = len(sep)
    values, gaps = frame.iloc[:, ::step], frame.drop(columns=frame.columns[::step])
    if values.shape[1] not in widths or not gaps.isna().all().all() or values.isna().any().any():
        return None
    ids = values.iloc[:, :2].to_numpy()
    if not (np.abs(ids) < EXACT_INTEGERS).all() or not (ids == np.round(ids)).all():
        return None
    lines = np.arange(1 + skip, 1 + skip + len(frame))
    parsed = pd.DataFrame({"user": ids[:, 0].astype(np.int64), "item": ids[:, 1].astype(np.int64),
                           "rating": values.iloc[:, 2].to_numpy()}, index=lines)
    parsed.attrs["width"] = values.shape[1]
    return parsed
