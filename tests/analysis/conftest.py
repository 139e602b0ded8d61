"""Tiny trained runs for the analysis tests, trained once per session (a few updates, seconds).

The dataset and the configs are the training tests' (tests/train/train_helpers.py): Hopper-shaped
synthetic episodes, a model shrunk to milliseconds per update. DeMa gets two layers here, so that
a layer can take another layer's attention.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import tiny_config, write_tiny_hdf5  # noqa: E402


def train_tiny(tmp: Path, model: str, n_layer: int = 2, updates: int = 6) -> Path:
    from dema.train.loop import train

    data = write_tiny_hdf5(tmp / "hopper-medium-tiny.hdf5")
    config = tiny_config(data, tmp / "runs", model, updates=updates)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, n_layer=n_layer))
    return train(config, log=lambda *_: None).run_dir


@pytest.fixture(scope="session")
def tiny_dema_run(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("dema"), "dema", updates=200)  # enough for the attention to matter


@pytest.fixture(scope="session")
def tiny_rnn_run(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("dema-rnn"), "dema-rnn", updates=2)


@pytest.fixture(scope="session")
def tiny_dt_run(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("dt"), "dt", updates=1)
