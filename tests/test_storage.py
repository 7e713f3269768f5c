"""Locations: local folders and bucket URIs behind one interface; no S3 server needed here
(tests/test_s3_storage.py runs against one)."""

import copyreg
import pickle

import pytest

from raysearch.errors import RaysearchError
from raysearch.search.storage import copy_dir, local_copy, resolve


def test_a_local_location_reads_writes_lists_and_copies(tmp_path):
    folder = resolve(tmp_path / "experiment")
    assert folder.is_local and str(folder) == str(tmp_path / "experiment") and not folder.exists()
    (folder / "a" / "b.txt").write_text("b")
    (folder / "c.txt").write_text("c")
    assert folder.is_dir() and (folder / "c.txt").is_file() and (folder / "c.txt").read_text() == "c"
    assert folder.list_files() == ["a/b.txt", "c.txt"] and (folder / "a").name == "a" and (folder / "a").parent == folder
    copy_dir(folder, resolve(tmp_path / "copy"))
    assert resolve(tmp_path / "copy").list_files() == ["a/b.txt", "c.txt"]
    with local_copy(folder / "c.txt") as path:
        assert path == tmp_path / "experiment" / "c.txt"


def test_bucket_uris_keep_their_scheme_and_path():
    location = resolve("s3://bucket/prefix/", "http://127.0.0.1:9")
    assert (location.scheme, location.path, str(location / "x")) == ("s3", "bucket/prefix", "s3://bucket/prefix/x")


@pytest.mark.parametrize("uri, fragment", [
    ("s3://key:secret@bucket/prefix", "s3://bucket/prefix: do not put credentials in the storage URI"),
    ("s3://", "s3://: expected s3://BUCKET[/PREFIX]"),
    ("nope://bucket/x", "nope://bucket/x: unsupported storage URI"),
])
def test_bad_uris_are_one_clear_error(uri, fragment):
    with pytest.raises(RaysearchError) as err:
        resolve(uri)
    assert str(err.value).startswith(fragment) and "secret" not in str(err.value)


def test_the_retry_policy_travels_with_the_pickled_filesystem(monkeypatch):
    monkeypatch.setenv("RAYSEARCH_S3_MAX_ATTEMPTS", "7")
    fs = pickle.loads(pickle.dumps(resolve("s3://bucket/x", "http://127.0.0.1:9").fs))
    assert fs.__reduce__()[1][0]["endpoint_override"] == "127.0.0.1:9"
    assert copyreg.dispatch_table[type(fs)](fs)[1][1] == 7
    monkeypatch.setenv("RAYSEARCH_S3_MAX_ATTEMPTS", "0")
    with pytest.raises(RaysearchError, match="RAYSEARCH_S3_MAX_ATTEMPTS='0'"):
        resolve("s3://bucket/x")
