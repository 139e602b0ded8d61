"""dema.data.episodes: episode returns against a naive loop; the statistics and their metadata keys."""

from __future__ import annotations

import numpy as np
import pytest

from dema.data.episodes import collection_stats, episode_returns, return_stats


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


def test_episode_returns_without_any_end_marker_is_one_episode():
    rewards = np.array([1.0, 2.0, 3.5], np.float32)
    none = np.zeros(3, bool)
    np.testing.assert_allclose(episode_returns(rewards, none, none), [6.5])


def test_return_stats_keys_and_values():
    stats = return_stats(np.array([1.0, 3.0, 8.0]))
    assert list(stats) == ["return_mean", "return_std", "return_min", "return_max"]  # metadata keys: never rename
    assert all(type(v) is float for v in stats.values())
    assert stats["return_mean"] == pytest.approx(4.0)
    assert stats["return_std"] == pytest.approx(np.std([1.0, 3.0, 8.0]))
    assert (stats["return_min"], stats["return_max"]) == (1.0, 8.0)


def test_collection_stats_is_what_collectors_record():
    data = {"rewards": np.array([1, 1, 2, 2, 2, 5], np.float32),
            "terminals": np.array([0, 1, 0, 0, 0, 0], bool),
            "timeouts": np.array([0, 0, 0, 0, 1, 0], bool)}
    stats = collection_stats(data)
    assert list(stats) == ["episodes", "transitions", "terminal_episodes",
                           "return_mean", "return_std", "return_min", "return_max"]
    assert (stats["episodes"], stats["transitions"], stats["terminal_episodes"]) == (3, 6, 1)
    assert (stats["return_min"], stats["return_max"]) == (2.0, 6.0)
    normalised = collection_stats(data, lambda mean: 10 * mean)
    assert normalised["normalized_return_mean"] == pytest.approx(10 * stats["return_mean"])
    assert type(normalised["normalized_return_mean"]) is float
