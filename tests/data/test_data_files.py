"""dema.files.atomic_write: the file appears whole or not at all; a failed write leaves nothing."""

from __future__ import annotations

import os

import numpy as np
import pytest

from dema.files import atomic_write


def test_writes_through_a_hidden_temporary_in_the_same_folder(tmp_path):
    seen = []

    def write(tmp):
        seen.append(tmp)
        tmp.write_text("new")

    path = tmp_path / "state.json"
    path.write_text("old")
    assert atomic_write(path, write) == path
    assert path.read_text() == "new"
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".") and seen[0].suffix == ".json"
    assert str(os.getpid()) in seen[0].name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_failing_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "d.hdf5"
    path.write_text("old")

    def write(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, write)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["d.hdf5"]


def test_the_temporary_keeps_the_extension_for_writers_that_add_one(tmp_path):
    path = tmp_path / "buffer.npz"
    atomic_write(path, lambda tmp: np.savez(tmp, x=np.arange(3)))  # savez appends .npz to other names
    with np.load(path) as z:
        assert z["x"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["buffer.npz"]


def test_keep_previous_keeps_the_replaced_file(tmp_path):
    path, previous = tmp_path / "train_state.pt", tmp_path / "train_state.prev.pt"
    atomic_write(path, lambda tmp: tmp.write_text("1"), keep_previous=previous)
    assert path.read_text() == "1" and not previous.exists()  # nothing to keep yet
    atomic_write(path, lambda tmp: tmp.write_text("2"), keep_previous=previous)
    assert path.read_text() == "2" and previous.read_text() == "1"

    def fails(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(path, fails, keep_previous=previous)
    assert path.read_text() == "2" and previous.read_text() == "1"  # a failed write changes neither
    assert {p.name for p in tmp_path.iterdir()} == {"train_state.pt", "train_state.prev.pt"}
