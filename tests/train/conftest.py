"""The training tests' fixture: a tiny synthetic D4RL-style dataset (see train_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from train_helpers import write_tiny_hdf5


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_tiny_hdf5(tmp_path_factory.mktemp("data") / "hopper-medium-tiny.hdf5")
