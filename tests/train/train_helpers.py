"""Helpers for the training tests: a tiny synthetic D4RL-style dataset and tiny model configs.

The dataset is written by the test itself (no download, no ../shared), a few short Hopper-shaped
episodes (11-dim observations, 3-dim actions in [-1, 1]), so every test runs on a fresh clone; the
writer is tests/data/data_factories.py's, shared by all the tests.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from dema.run.config import preset_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))  # the tests' one tiny-D4RL writer
from data_factories import make_arrays, write_d4rl  # noqa: E402

TINY_MODEL = dict(n_layer=1, embed_dim=16, d_model=16, d_state=4, context_len=5, max_ep_len=64)


def write_tiny_hdf5(path: Path, lengths=(30, 17, 40, 9, 25), seed: int = 0) -> Path:
    """Hopper-shaped episodes that all fall (terminal) but the last, cut by a timeout."""
    ends = ["terminal"] * (len(lengths) - 1) + ["timeout"]
    return write_d4rl(path, make_arrays(lengths, obs_dim=11, act_dim=3, seed=seed, ends=ends))


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
