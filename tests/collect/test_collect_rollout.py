"""Rollout internals: episode returns against a naive loop; sync and async vector envs agree."""

from __future__ import annotations

import numpy as np

from dema.data.collect.policies import RandomPolicy
from dema.data.collect.rollout import Stage, episode_returns, rollout


def test_episode_returns_match_a_naive_loop():
    rng = np.random.default_rng(0)
    n = 500
    rewards = rng.normal(size=n).astype(np.float32)
    terminals = rng.random(n) < 0.02
    timeouts = (rng.random(n) < 0.02) & ~terminals
    want, total = [], 0.0
    for t in range(n):
        total += float(rewards[t])
        if terminals[t] or timeouts[t] or t == n - 1:  # the data's end closes the last episode
            want.append(total)
            total = 0.0
    np.testing.assert_allclose(episode_returns(rewards, terminals, timeouts), want, rtol=1e-6, atol=1e-6)


def test_sync_and_async_vector_envs_record_the_same_data():
    stage = Stage("random", RandomPolicy(-np.ones(3), np.ones(3)), steps=203)
    sync = rollout("Hopper-v5", stage, num_envs=2, seed=3, vector_mode="sync")
    asyn = rollout("Hopper-v5", stage, num_envs=2, seed=3, vector_mode="async")
    for key in sync:
        np.testing.assert_array_equal(sync[key], asyn[key], err_msg=key)
    # Two streams of 102 and 101 steps, each closed by an episode end.
    ends = sync["terminals"] | sync["timeouts"]
    assert len(ends) == 203 and ends[101] and ends[202]
