"""Episodes in vectorised environments (MuJoCo, PointMaze, Atari), without a bias to short episodes.

`run_episodes` runs exactly `n` episodes, each to its end (termination or the time limit), in
rounds of at most `max_envs` environments stepped together (`simulators.make_vector_env`). Every
environment plays ONE episode: an environment that has finished keeps being stepped by the vector
(its next-step autoreset) but its results are ignored. Counting "the first n episodes to finish"
over auto-resetting environments instead would over-sample short episodes (falls), a bias this
design excludes.

Seeding: environment i of a round is reset with seed `seed + i` (the vector's reset), and rounds
continue the numbering, so episode j always gets seed `seed + j`; each round's agent is reset with
the round's first seed (discrete actions: its sampling generator).

Recording (`dema.evaluation.video`): with a `recorder`, the loop hands the pictures of the episodes
it wants to it after the reset and after each step (`simulators.frame_source`); the environments
that play them render (MuJoCo: `dema.evaluation.rendering.RenderedEnv`, the same environment in a
child process; Atari: the observed frames), the others are made as without a recorder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from dema.envs import EnvSpec
from dema.evaluation.simulators import frame_source, make_vector_env


@dataclass
class Episodes:
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    act_seconds: float = 0.0  # time spent inside agent.act
    act_calls: int = 0  # agent.act calls (each decides for every environment of its round)
    env_steps: int = 0  # environment steps that counted (the sum of episode lengths)
    truncated: list[bool] = field(default_factory=list)  # ended by a time limit, not by the task


def run_episodes(agent_factory, spec: EnvSpec, n: int, seed: int, target_return: float,
                 max_envs: int = 50, max_episode_steps: int = 0, recorder=None) -> Episodes:
    """Play `n` episodes of the environment of `spec` with agents from `agent_factory(num_envs)`,
    conditioned on `target_return`, in rounds of at most `max_envs` environments; the episodes a
    `recorder` (dema.evaluation.video.EpisodeRecorder) wants are filmed for it."""
    to_env_action = _to_index if spec.discrete else _clip_to_box
    frames = frame_source(spec) if recorder else None
    out = Episodes()
    done_so_far = 0
    while done_so_far < n:
        num_envs = min(max_envs, n - done_so_far)
        round_seed = seed + done_so_far
        film = recorder.film(done_so_far, num_envs, frames) if recorder else None
        render = tuple(recorder.in_round(done_so_far, num_envs)) if recorder else ()
        envs = make_vector_env(spec, num_envs, max_episode_steps, render, recorder.size if recorder else 480)
        try:
            _one_round(agent_factory(num_envs), envs, round_seed, target_return, out, to_env_action, film)
        finally:
            if film is not None:
                film.close()
            envs.close()
        done_so_far += num_envs
    return out


def _clip_to_box(action: np.ndarray, envs) -> np.ndarray:
    return np.clip(action, envs.single_action_space.low, envs.single_action_space.high)


def _to_index(action: np.ndarray, envs) -> np.ndarray:
    return action.astype(np.int64)


def _one_round(agent, envs, seed: int, target_return: float, out: Episodes, to_env_action, film=None) -> None:
    n = envs.num_envs
    obs, _ = envs.reset(seed=seed)
    if film is not None:
        film.begin(envs, obs)
    agent.reset(target_return, seed=seed)
    returns = np.zeros(n)
    lengths = np.zeros(n, dtype=np.int64)
    active = np.ones(n, dtype=bool)
    cut = np.zeros(n, dtype=bool)
    reward = None
    while active.any():
        start = time.perf_counter()
        action = agent.act(obs, reward)
        out.act_seconds += time.perf_counter() - start
        out.act_calls += 1
        obs, reward, terminated, truncated, _ = envs.step(to_env_action(action, envs))
        returns += np.where(active, reward, 0.0)
        lengths += active
        cut |= active & truncated & ~terminated
        if film is not None:
            film.after_step(envs, obs, returns, lengths, stepped=active, ended=active & (terminated | truncated))
        active &= ~(terminated | truncated)
    out.truncated += cut.tolist()
    out.returns += returns.tolist()
    out.lengths += lengths.tolist()
    out.env_steps += int(lengths.sum())
