"""Atomic file writes (temp file + rename in the same folder) that respect the user's umask.

A write that the filesystem refuses (read-only, full, not a folder) raises :class:`RaysearchError` naming
the target; the temp file or folder is removed, so the target is the old version or absent, never partial.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from raysearch.errors import RaysearchError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _writing(target: Path) -> Iterator[None]:
    """Turn the filesystem's refusal (EROFS, ENOSPC, EACCES, ENOTDIR, ...) into one error naming ``target``."""
    try:
        yield
    except OSError as err:
        raise RaysearchError(f"{target}: cannot write there ({_reason(err)})") from err


def _reason(err: OSError) -> str:
    """The system's words (``strerror``); for ``shutil.copytree``'s collected errors, the first one's."""
    if isinstance(err, shutil.Error) and err.args and isinstance(err.args[0], list) and err.args[0]:
        return re.sub(r"^\[Errno \d+\] (.*?)(: '.*')?$", r"\1", str(err.args[0][0][-1]))
    return err.strerror or str(err)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` then rename ``tmp`` onto ``path``: readers see the old file or the whole new one."""
    path = Path(path)
    with _writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(fd)
        try:
            os.chmod(tmp, 0o666 & ~_umask())
            write(Path(tmp))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_copy_dir(source: Path, target: Path) -> None:
    """Copy a folder so that ``target`` is never seen half-copied (an older ``target`` is replaced)."""
    with atomic_dir(target) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """A temporary folder next to ``target`` to fill; it replaces ``target`` (an older one is removed) once the
    block ends without an error, and is removed otherwise."""
    target = Path(target)
    with _writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
