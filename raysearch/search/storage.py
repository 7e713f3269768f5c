"""Where results live: a local/NFS folder or an object-store URI (``s3://bucket/prefix``, ``gs://...``).

One :class:`Location` (a ``pyarrow.fs`` filesystem and a path in it) serves every storage, so the
search, resume, export and ``recommend`` read and write the same way whether the experiment sits on a
shared disk or in a bucket; Ray Tune and Ray Train are handed the same filesystem.

Writes are whole or absent: locally a temp file renamed into place (:mod:`raysearch.atomic_files`), in an
object store a single PUT per object. Credentials never pass through here: pyarrow's S3 client reads
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (or a profile, or an instance role) itself, so a
pickled filesystem (sent to Ray workers, saved in Tune's experiment state) carries none. An S3
endpoint (MinIO, Ceph, moto) comes from ``--storage-endpoint`` or ``AWS_ENDPOINT_URL(_S3)``.

An S3 endpoint that goes away for a while is ridden out: every request is retried
``RAYSEARCH_S3_MAX_ATTEMPTS`` times (default 10, about 90 s of backoff) by every process, Ray's workers
included (the retry policy travels with the pickled filesystem). A failure beyond that raises one
:class:`RaysearchError` naming the location.
"""

from __future__ import annotations

import contextlib
import copyreg
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

import pyarrow
import pyarrow.fs as pafs

from raysearch.atomic_files import atomic_copy_dir, atomic_write, atomic_write_text
from raysearch.errors import RaysearchError

S3_MAX_ATTEMPTS = "RAYSEARCH_S3_MAX_ATTEMPTS"


@contextlib.contextmanager
def remote_errors(location: "Location") -> Iterator[None]:
    """An object-store failure (endpoint unreachable after the retries, access denied) becomes one
    :class:`RaysearchError` naming the location; local errors pass through unchanged."""
    try:
        yield
    except OSError as err:
        if location.is_local:
            raise
        raise RaysearchError(f"{location}: storage request failed ({str(err).splitlines()[0]})") from err


@dataclass(frozen=True)
class Location:
    """A folder or file: ``path`` inside ``fs`` (absolute locally, ``bucket/key`` in a bucket)."""

    fs: pafs.FileSystem
    path: str
    scheme: str = ""  # "" for the local filesystem, else the URI scheme (s3, gs, ...)

    @property
    def is_local(self) -> bool:
        return not self.scheme

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent(self) -> "Location":
        return Location(self.fs, self.path.rstrip("/").rsplit("/", 1)[0], self.scheme)

    def __truediv__(self, name: str) -> "Location":
        return Location(self.fs, f"{self.path.rstrip('/')}/{name}", self.scheme)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.path}" if self.scheme else self.path

    def _type(self) -> pafs.FileType:
        with remote_errors(self):
            return self.fs.get_file_info(self.path).type

    def exists(self) -> bool:
        return self._type() != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._type() == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._type() == pafs.FileType.Directory

    def read_text(self) -> str:
        with remote_errors(self), self.fs.open_input_stream(self.path) as stream:
            return stream.read().decode()

    def write_text(self, text: str) -> None:
        """Readers see the old object or the whole new one."""
        if self.is_local:
            atomic_write_text(Path(self.path), text)
            return
        with remote_errors(self), self.fs.open_output_stream(self.path) as stream:
            stream.write(text.encode())

    def write_bytes(self, data: bytes) -> None:
        """Readers see the old object or the whole new one."""
        if self.is_local:
            atomic_write(Path(self.path), lambda tmp: tmp.write_bytes(data))
            return
        with remote_errors(self), self.fs.open_output_stream(self.path) as stream:
            stream.write(data)

    def list_files(self) -> list[str]:
        """Every file below this folder, as paths relative to it."""
        with remote_errors(self):
            infos = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=True, allow_not_found=True))
        root = self.path.rstrip("/") + "/"
        return sorted(i.path.removeprefix(root) for i in infos if i.type == pafs.FileType.File)


def resolve(target: str | os.PathLike | Location, endpoint: str | None = None) -> Location:
    """A local path, or a URI understood by ``pyarrow.fs`` (S3 with an optional custom endpoint)."""
    if isinstance(target, Location):
        return target
    text = str(target)
    if "://" not in text:
        return Location(pafs.LocalFileSystem(), str(Path(text).resolve()))
    uri = urlparse(text)
    if "@" in uri.netloc:
        raise RaysearchError(f"{uri.scheme}://{uri.netloc.rpartition('@')[2]}{uri.path}: do not put credentials in "
                             "the storage URI; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or a profile) instead")
    if not uri.netloc:
        raise RaysearchError(f"{text}: expected {uri.scheme}://BUCKET[/PREFIX]")
    path = f"{uri.netloc}{uri.path}".rstrip("/")
    if uri.scheme == "s3":
        return Location(_s3(endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")),
                        path, "s3")
    try:
        fs, _ = pafs.FileSystem.from_uri(text)
    except (pyarrow.ArrowException, ValueError, OSError) as err:
        raise RaysearchError(f"{text}: unsupported storage URI ({err})") from None
    return Location(fs, path, uri.scheme)


def _s3(endpoint: str | None) -> pafs.S3FileSystem:
    """S3 client: credentials from the AWS environment; a custom endpoint keeps its http/https scheme."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    options: dict[str, Any] = {"retry_strategy": _retries(_max_attempts())}
    if region or endpoint:
        options["region"] = region or "us-east-1"
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        options.update(endpoint_override=parsed.netloc, scheme=parsed.scheme)
    return pafs.S3FileSystem(**options)


def _max_attempts() -> int:
    text = os.environ.get(S3_MAX_ATTEMPTS, "10")
    if not text.isdigit() or int(text) < 1:
        raise RaysearchError(f"{S3_MAX_ATTEMPTS}={text!r}: expected a whole number of attempts >= 1")
    return int(text)


def _retries(max_attempts: int) -> pafs.S3RetryStrategy:
    return pafs.AwsStandardS3RetryStrategy(max_attempts=max_attempts)


def _rebuild_s3(options: dict[str, Any], max_attempts: int) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(**options, retry_strategy=_retries(max_attempts))


def _reduce_s3(fs: pafs.S3FileSystem) -> tuple[Callable[..., pafs.S3FileSystem], tuple[dict[str, Any], int]]:
    """pyarrow drops the retry strategy when it pickles an S3 filesystem; keep ours (set when pickled)."""
    _, (options,) = fs.__reduce__()
    return _rebuild_s3, (options, _max_attempts())


copyreg.pickle(pafs.S3FileSystem, _reduce_s3)


def copy_dir(source: Location, target: Location) -> None:
    """Copy a folder. A local ``target`` is replaced atomically; in a bucket every object is written
    whole (a crash can leave some files of a multi-file folder, never a partial file)."""
    if not target.is_local:
        with remote_errors(target):
            pafs.copy_files(source.path, target.path, source_filesystem=source.fs, destination_filesystem=target.fs)
        return
    with local_copy(source) as folder:
        atomic_copy_dir(folder, Path(target.path))


@contextlib.contextmanager
def local_copy(source: Location) -> Iterator[Path]:
    """The file or folder on local disk: itself, or a temporary download of it (under the same name)."""
    if source.is_local:
        yield Path(source.path)
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / source.name
        with remote_errors(source):
            pafs.copy_files(source.path, str(path), source_filesystem=source.fs,
                            destination_filesystem=pafs.LocalFileSystem())
        yield path
