"""Where the MovieLens files live, and fetching the official GroupLens archives (checksum-verified)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from raysearch.errors import DataError

ENV_VAR = "RAYSEARCH_DATA_DIR"
DEFAULT_DIR = Path.home() / ".cache" / "raysearch"


@dataclass(frozen=True)
class Archive:
    url: str
    md5: str  # published by GroupLens next to the archive (<url>.md5)
    required: tuple[tuple[str, ...], ...]  # files that must exist; any one name of each group will do
    folder: str = ""  # the archive's top-level folder, if not the dataset's name


GROUPLENS = "https://files.grouplens.org/datasets/movielens/"
ARCHIVES = {
    "ml-100k": Archive("https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                       "0e33842e24a9c977be4e0107933c0723",
                       (("u.data",), ("u.user",), ("u.item",), ("u.genre",), ("u.occupation",))),
    "ml-1m": Archive("https://files.grouplens.org/datasets/movielens/ml-1m.zip",
                     "c4d9eecfca2ab87c1945afe126590906",
                     (("users.dat",), ("movies.dat",), ("ratings.dat", "ratings.csv"))),
    "ml-10m": Archive(GROUPLENS + "ml-10m.zip", "ce571fd55effeba0271552578f2648bd", (("movies.dat",), ("ratings.dat",)),
                      folder="ml-10M100K"),
    "ml-20m": Archive(GROUPLENS + "ml-20m.zip", "cd245b17a1ae2cc31bb14903e1204af3", (("movies.csv",), ("ratings.csv",))),
    "ml-25m": Archive(GROUPLENS + "ml-25m.zip", "6b51fb2759a8657d3bfcbfc42b592ada", (("movies.csv",), ("ratings.csv",))),
}
SYNTHETIC = "synthetic"  # a generated set in ML-25M's format (raysearch synthesize); nothing to download
SYNTHETIC_FILES = (("movies.csv",), ("ratings.csv",))


def data_root(explicit: str | Path | None = None) -> Path:
    """``--data-dir`` if given, else ``$RAYSEARCH_DATA_DIR``, else ``~/.cache/raysearch``."""
    return Path(explicit or os.environ.get(ENV_VAR) or DEFAULT_DIR).expanduser()


def dataset_dir(name: str, root: Path, download: bool = False) -> Path:
    """The folder holding dataset ``name``'s files, downloading them first if asked and missing."""
    folder = root / name
    if name == SYNTHETIC:
        if _missing(SYNTHETIC_FILES, folder):
            raise DataError(f"dataset synthetic not found: {folder} lacks movies.csv or ratings.csv; generate it with "
                            f"`raysearch synthesize --out {folder}` (or point --data-dir or ${ENV_VAR} at the parent "
                            "folder of one)")
        return folder
    if name not in ARCHIVES:
        raise DataError(f"unknown dataset {name!r}; expected one of {', '.join([*ARCHIVES, SYNTHETIC])}")
    missing = _missing(ARCHIVES[name].required, folder)
    if missing and download:
        fetch(name, root)
        missing = _missing(ARCHIVES[name].required, folder)
    if missing:
        raise DataError(
            f"dataset {name} not found: {folder} lacks {', '.join(missing)}. Put the GroupLens files there, "
            f"point --data-dir or ${ENV_VAR} at their parent folder, or pass --download to fetch "
            f"{ARCHIVES[name].url}")
    return folder


def fetch(name: str, root: Path) -> None:
    """Download the official archive, verify its MD5 and unpack it to ``root/name`` atomically."""
    archive = ARCHIVES[name]
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-download-") as tmp:
        zip_path = Path(tmp) / "archive.zip"
        try:
            with urllib.request.urlopen(archive.url, timeout=60) as response, zip_path.open("wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as err:
            raise DataError(f"could not download {archive.url}: {err}") from None
        with zip_path.open("rb") as file:
            digest = hashlib.file_digest(file, "md5").hexdigest()  # streamed: ML-25M's archive is 250 MB
        if digest != archive.md5:
            raise DataError(f"{archive.url}: checksum mismatch (md5 {digest}, expected {archive.md5}); "
                            "the download is corrupt or the archive changed, nothing was unpacked")
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tmp)
        unpacked = Path(tmp) / (archive.folder or name)
        if not unpacked.is_dir():
            raise DataError(f"{archive.url}: archive has no top-level folder {unpacked.name}/")
        target = root / name
        if target.exists():
            shutil.rmtree(target)
        unpacked.rename(target)


def _missing(required: tuple[tuple[str, ...], ...], folder: Path) -> list[str]:
    return [" or ".join(group) for group in required if not any((folder / f).is_file() for f in group)]
