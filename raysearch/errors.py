"""Errors a user can cause; each names the file, key or line at fault."""


class RaysearchError(Exception):
    """Base class for errors caused by user input; the CLI prints them without a traceback."""


class ConfigError(RaysearchError, ValueError):
    """A bad configuration key or value."""


class DataError(RaysearchError, ValueError):
    """A missing or malformed data file."""


class TrainingDiverged(RaysearchError):
    """The training loss became NaN or infinite; the message names the epoch and the value."""
