"""Tiny Atari fixtures written by the tests: a few hundred frames of scripted Breakout and Pong."""

from __future__ import annotations

import pytest

pytest.importorskip("ale_py")


@pytest.fixture(scope="session")
def breakout_replay(tmp_path_factory):
    """OUT/Breakout/1/replay_logs with ~300 transitions in 3 checkpoints (epsilon 0.1 and 1)."""
    from dema.data.collect.atari.scripted import collect_scripted

    out = tmp_path_factory.mktemp("atari")
    folder, meta = collect_scripted("Breakout", out, 300, seed=0, levels=(0.1, 1.0), capacity=120,
                                    max_episode_steps=100, log=lambda *a: None)
    return folder


@pytest.fixture(scope="session")
def pong_replay(tmp_path_factory):
    from dema.data.collect.atari.scripted import collect_scripted

    out = tmp_path_factory.mktemp("atari")
    folder, meta = collect_scripted("Pong", out, 200, seed=1, levels=(0.0, 1.0), capacity=1000,
                                    max_episode_steps=100, log=lambda *a: None)
    return folder
