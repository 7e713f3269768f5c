"""Errors a user can cause; each names the file, key or line at fault."""

from __future__ import annotations

from typing import Any


class RaysearchError(Exception):
    """Base class for errors caused by user input; the CLI prints them without a traceback."""


class ConfigError(RaysearchError, ValueError):
    """A bad configuration key or value."""


class DataError(RaysearchError, ValueError):
    """A missing or malformed data file."""


class TrainingDiverged(RaysearchError):
    """The training loss became NaN or infinite; the message names the epoch and the value."""


def check(name: str, value: Any, ok: bool, why: str) -> None:
    """Raise ``ConfigError("key 'name' = value why")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"key {name!r} = {value!r} {why}")


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    check(name, value, value in choices, f"must be one of {', '.join(choices)}")
