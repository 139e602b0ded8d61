"""Rollout internals: sync and async vector envs agree (episode returns: tests/data/test_data_episodes.py)."""

from __future__ import annotations

import numpy as np

from dema.data.collect.policies import RandomPolicy
from dema.data.collect.rollout import Stage, rollout


def test_sync_and_async_vector_envs_record_the_same_data():
    stage = Stage("random", RandomPolicy(-np.ones(3), np.ones(3)), steps=203)
    sync = rollout("Hopper-v5", stage, num_envs=2, seed=3, vector_mode="sync")
    asyn = rollout("Hopper-v5", stage, num_envs=2, seed=3, vector_mode="async")
    for key in sync:
        np.testing.assert_array_equal(sync[key], asyn[key], err_msg=key)
    # Two streams of 102 and 101 steps, each closed by an episode end.
    ends = sync["terminals"] | sync["timeouts"]
    assert len(ends) == 203 and ends[101] and ends[202]
