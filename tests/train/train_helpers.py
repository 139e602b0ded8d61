"""Helpers for the training tests: a tiny synthetic D4RL-style dataset and tiny model configs.

The dataset is written by the test itself (no download, no ../shared), a few short Hopper-shaped
episodes (11-dim observations, 3-dim actions in [-1, 1]), so every test runs on a fresh clone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np

from dema.train.config import preset_config

TINY_MODEL = dict(n_layer=1, embed_dim=16, d_model=16, d_state=4, context_len=5, max_ep_len=64)


def write_tiny_hdf5(path: Path, lengths=(30, 17, 40, 9, 25), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    ends = np.cumsum(lengths) - 1
    terminals[ends[:-1]] = True  # falls
    timeouts[ends[-1]] = True
    with h5py.File(path, "w") as f:
        f["observations"] = rng.normal(size=(n, 11)).astype(np.float32)
        f["actions"] = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
        f["rewards"] = rng.uniform(0, 3, size=n).astype(np.float32)
        f["terminals"] = terminals
        f["timeouts"] = timeouts
    return path


def tiny_config(dataset: Path, runs_dir: Path, model: str = "dema", **schedule):
    """The hopper-medium preset shrunk to a model that trains in milliseconds."""
    config = preset_config(model, str(dataset), protocol="paper")
    config = dataclasses.replace(
        config,
        runs_dir=str(runs_dir),
        progress=False,
        threads=1,
        model=dataclasses.replace(config.model, **TINY_MODEL),
        optim=dataclasses.replace(config.optim, batch_size=8, warmup_steps=3, lr=1e-3),
        schedule=dataclasses.replace(config.schedule, **{"updates": 6, "log_every": 2, "eval_every": 0,
                                                         "checkpoint_every": 2, **schedule}),
        eval=dataclasses.replace(config.eval, episodes=2, train_episodes=2, max_episode_steps=15, at_end=False),
    )
    return config
