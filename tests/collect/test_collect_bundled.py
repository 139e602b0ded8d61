"""The bundled dataset: present, small, float32, and recording how it was made."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

import dema

BUNDLED = Path(dema.__file__).resolve().parent / "bundled" / "hopper-medium-replay-small.hdf5"
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "collect_bundled.sh"


def test_bundled_dataset_is_small_and_documented():
    assert BUNDLED.is_file()
    assert BUNDLED.stat().st_size < 5_000_000
    with h5py.File(BUNDLED, "r") as f:
        assert {"observations", "actions", "rewards", "terminals", "timeouts"} <= set(f)
        assert f["observations"].dtype == np.float32 and f["observations"].shape == (100_000, 11)
        assert f["terminals"][-1] or f["timeouts"][-1]
        meta = dict(f["metadata"].attrs)
    assert meta["env_id"] == "Hopper-v5" and meta["recipe"] == "medium-replay" and meta["seed"] == 0
    assert "approximation" in meta["approximation"]
    assert {"gymnasium", "mujoco", "numpy"} <= set(json.loads(meta["versions"]))
    # The recorded command is the one scripts/collect_bundled.sh runs.
    if SCRIPT.is_file():
        script = SCRIPT.read_text()
        for option in ("--steps 100000", "--seed 0", "--num-envs 8", "--no-next-observations"):
            assert option in meta["command"] and option in script
