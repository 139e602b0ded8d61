"""Fixtures of the adverse-use tests: a tiny dataset and a finished tiny run, made once per session;
each test works on its own copy of the run (corpus.copy_run)."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import TINY, write_tiny_hdf5  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_tiny_hdf5(tmp_path_factory.mktemp("data") / "hopper-medium-tiny.hdf5")


@pytest.fixture(scope="session")
def finished_run(tiny_dataset, tmp_path_factory) -> Path:
    """A dt run of 4 updates with an evaluation at update 2 (so best.safetensors exists) and eval.json."""
    from dema.cli import main

    runs = tmp_path_factory.mktemp("runs")
    argv = ["train", "--model", "dt", "--dataset", str(tiny_dataset), "--runs-dir", str(runs), "--run-name", "done",
            *TINY, "--schedule.eval-every", "2"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(argv) == 0, err.getvalue()
    return runs / "done"
