"""The replay recipe on a tiny budget: SB3 DQN trains, every transition it saw is written as DQN-replay."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")


def test_replay_recipe_writes_what_dqn_saw(tmp_path):
    from dema.data.collect.atari.replay_recipe import collect_replay
    from dema.data.load import load_dataset

    out = tmp_path / "atari"
    # a few gradient steps only (learning starts at 150 of 200 steps, batches of 8): CI's budget
    collect_replay("breakout", out, 200, capacity=150, device="cpu", dqn={"learning_starts": 150, "batch_size": 8},
                   log=lambda *a: None)
    meta = json.loads((out / "Breakout" / "dema_collect.json").read_text())
    data = load_dataset(out / "Breakout")
    # every agent step, plus the steps the wrappers took themselves (FIRE after resets, no-op after a lost life)
    assert len(data) == meta["transitions"] >= 200 and meta["algo"] == "sb3-dqn"
    assert data.observations.shape[1:] == (84, 84) and data.observations.dtype == np.uint8
    assert data.n_actions == 4 and set(np.unique(data.rewards)) <= {0.0, 1.0, 4.0, 7.0}  # raw Breakout scores
