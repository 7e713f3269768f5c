"""Atomic writes: readers see the old version or the whole new one, and a refusal names the target."""

import pytest

from raysearch.atomic_files import atomic_copy_dir, atomic_write, atomic_write_text
from raysearch.errors import RaysearchError


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "old")

    def half(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(RaysearchError, match=r"a.txt: cannot write there \(No space left on device\)"):
        atomic_write(path, half)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_copied_folder_replaces_the_old_one_whole(tmp_path):
    (tmp_path / "source").mkdir()
    atomic_write_text(tmp_path / "source" / "new.txt", "new")
    atomic_write_text(tmp_path / "target" / "old.txt", "old")
    atomic_copy_dir(tmp_path / "source", tmp_path / "target")
    assert [p.name for p in (tmp_path / "target").iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source", "target"]


def test_a_target_under_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(RaysearchError, match=r"file/sub/a.txt: cannot write there \(Not a directory\)"):
        atomic_write_text(tmp_path / "file" / "sub" / "a.txt", "x")
