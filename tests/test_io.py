"""Atomic writes: a failed write leaves the old file and no temporary; outputs are readable by the
group and others as the umask allows (not mkstemp's 0600); a folder is replaced whole."""

from __future__ import annotations

import os

import pytest

from robust import io


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    io.write_text(path, "old")
    with pytest.raises(RuntimeError), io.atomic_open(path) as handle:
        handle.write("half")
        raise RuntimeError
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        io.write_text(tmp_path / "a.txt", "x")
        io.write_folder(tmp_path / "d", {"n": ""})
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("before", ["file", "folder"])
def test_write_folder_replaces_what_was_there(tmp_path, before):
    path = tmp_path / "params.ok"
    if before == "file":
        path.write_text("old")
    else:
        io.write_folder(path, {"gone": "", "kept": "old"})
    io.write_folder(path, {"kept": "", "new": "text"})
    assert sorted(p.name for p in path.iterdir()) == ["kept", "new"]
    assert (path / "new").read_text() == "text" and (path / "kept").read_text() == ""
    assert [p.name for p in tmp_path.iterdir()] == ["params.ok"]
