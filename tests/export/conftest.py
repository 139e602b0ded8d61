"""The export tests' fixtures: tiny runs trained by the training loop, once per session."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from train_helpers import tiny_config, write_tiny_hdf5  # noqa: E402


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory) -> dict[str, Path]:
    """model -> a run of 40 updates at a high learning rate (weights well away from their initialisation):
    RNN-like DeMa (the recurrent step), Transformer-like DeMa and DT (windows)."""
    from dema.train.loop import train

    folder = tmp_path_factory.mktemp("export")
    data = write_tiny_hdf5(folder / "hopper-medium-tiny.hdf5")
    runs = {}
    for model in ("dema-rnn", "dema", "dt"):
        config = tiny_config(data, folder / "runs", model, updates=40, checkpoint_every=40)
        config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, lr=3e-3))
        runs[model] = Path(train(config, log=lambda *_: None).run_dir)
    return runs
