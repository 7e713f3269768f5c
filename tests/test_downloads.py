import hashlib
import zipfile

import pytest

from raysearch.data import downloads
from raysearch.data.downloads import Archive, data_root, dataset_dir
from raysearch.errors import DataError

FILES = ("u.data", "u.user", "u.item", "u.genre", "u.occupation")


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("RAYSEARCH_DATA_DIR", str(tmp_path / "env"))
    assert data_root(tmp_path / "flag") == tmp_path / "flag"
    assert data_root(None) == tmp_path / "env"
    monkeypatch.delenv("RAYSEARCH_DATA_DIR")
    assert data_root(None) == downloads.DEFAULT_DIR


def test_missing_files_are_named_with_the_fix(tmp_path):
    (tmp_path / "ml-1m").mkdir()
    (tmp_path / "ml-1m" / "users.dat").write_text("1::F::1::10::48067\n")
    with pytest.raises(DataError) as err:
        dataset_dir("ml-1m", tmp_path)
    text = str(err.value)
    assert "movies.dat, ratings.dat or ratings.csv" in text and str(tmp_path / "ml-1m") in text
    assert "--download" in text


def _archive(data_root, tmp_path):
    """A real zip in GroupLens layout (ml-100k/...) served from a file:// URL, with its true MD5."""
    path = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name in FILES:
            zf.write(data_root / "ml-100k" / name, f"ml-100k/{name}")
    return path, hashlib.md5(path.read_bytes()).hexdigest()


def test_download_verifies_checksum_and_unpacks(data_root, tmp_path, monkeypatch):
    path, md5 = _archive(data_root, tmp_path)
    archive = Archive(path.as_uri(), md5, downloads.ARCHIVES["ml-100k"].required)
    monkeypatch.setitem(downloads.ARCHIVES, "ml-100k", archive)
    target = tmp_path / "data"
    folder = dataset_dir("ml-100k", target, download=True)
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    assert (folder / "u.data").read_bytes() == (data_root / "ml-100k" / "u.data").read_bytes()


def test_checksum_mismatch_unpacks_nothing(data_root, tmp_path, monkeypatch):
    path, _ = _archive(data_root, tmp_path)
    archive = Archive(path.as_uri(), "0" * 32, downloads.ARCHIVES["ml-100k"].required)
    monkeypatch.setitem(downloads.ARCHIVES, "ml-100k", archive)
    target = tmp_path / "data"
    with pytest.raises(DataError, match="checksum mismatch"):
        dataset_dir("ml-100k", target, download=True)
    assert list(target.iterdir()) == []
