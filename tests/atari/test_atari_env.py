"""The DT evaluation protocol and the gamer-normalised score (dema.evaluation.simulators, dema.envs)."""

from __future__ import annotations

import numpy as np
import pytest

from dema.data.collect.atari.game import Game
from dema.envs import ATARI_ACTIONS, ATARI_SCORES, ENVS, env_spec, game_name
from dema.evaluation.simulators import atari_vector_env, make_vector_env
from dema.errors import ConfigError


def test_every_game_has_one_row_of_scores_targets_and_actions():
    for game, n in ATARI_ACTIONS.items():
        spec = env_spec(game)
        low, high = ATARI_SCORES[game]
        assert spec is ENVS[game.lower()] and spec.act_dim == n and spec.atari and spec.discrete
        assert spec.normalize(low) == 0.0 and spec.normalize(high) == pytest.approx(100.0)
        assert spec.reward_scale == 1.0 and spec.state_shape == (4, 84, 84) and spec.return_targets
    assert env_spec("pong").normalize(20) == pytest.approx(100 * 41 / 36)  # DT's gamer score of Pong: 15
    assert env_spec("hopper").state_shape == 11 and not env_spec("hopper").atari


def test_game_names():
    assert game_name("pong") == game_name("ALE/Pong-v5") == "Pong"
    with pytest.raises(ConfigError, match="unknown Atari game 'Tetris'"):
        game_name("Tetris")


def test_vector_env_follows_the_protocol():
    envs = make_vector_env(env_spec("breakout"), 2)  # the maker MuJoCo's evaluation uses too
    try:
        obs, _ = envs.reset(seed=0)
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
        assert envs.single_action_space.n == ATARI_ACTIONS["Breakout"]  # the minimal action set
        assert not obs[:, :3].any() and obs[:, 3].any()  # older frames of a new episode are zero, newest last
        for _ in range(5):
            obs, *_ = envs.step(np.array([1, 1]))
    finally:
        envs.close()


@pytest.mark.parametrize("game", ["Pong", "Breakout"])
def test_python_game_frames_equal_the_vector_env(game):
    """The collector's frames (Game) and the evaluator's (AtariVectorEnv) agree up to rounding."""
    envs = atari_vector_env(game, 1, stack=1, noop_max=0)
    one = Game(game, seed=0, noop_max=0)
    try:
        obs, _ = envs.reset(seed=0)
        frame = one.reset()
        assert np.abs(frame.astype(int) - obs[0, 0]).max() <= 1
        rng = np.random.default_rng(0)
        for _ in range(60):
            action = int(rng.integers(one.n_actions))
            obs, reward, *_ = envs.step(np.array([action]))
            frame, r, terminal, _ = one.step(action)
            assert np.abs(frame.astype(int) - obs[0, 0]).max() <= 1 and r == reward[0]
    finally:
        envs.close()
