"""Episodes in Gymnasium MuJoCo v5 with vectorised environments, without a bias to short episodes.

`run_episodes` runs exactly `n` episodes, each to its end (termination or the time limit), in
rounds of at most `max_envs` environments stepped together. Every environment plays ONE episode:
an environment that has finished keeps being stepped by the vector (its next-step autoreset) but
its results are ignored. Counting "the first n episodes to finish" over auto-resetting environments
instead would over-sample short episodes (falls), a bias this design excludes.

Seeding: environment i of a round is reset with seed `seed + i` (gymnasium's vector reset), and
rounds continue the numbering, so episode j always gets seed `seed + j`.

Recording (`dema.evaluation.video`): with a `recorder`, the loop hands the pictures of the episodes
it wants to it after the reset and after each step; the environments that play them render (MuJoCo:
`dema.evaluation.rendering.RenderedEnv`, the same environment in a child process), the others are
made as without a recorder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Episodes:
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    act_seconds: float = 0.0  # time spent inside agent.act
    act_calls: int = 0  # agent.act calls (each decides for every environment of its round)
    env_steps: int = 0  # environment steps that counted (the sum of episode lengths)
    truncated: list[bool] = field(default_factory=list)  # ended by a time limit, not by the task


def make_vector_env(gym_id: str, num_envs: int, max_episode_steps: int = 0, render: tuple[int, ...] = (),
                    size: int = 480):
    """`num_envs` copies of `gym_id` stepped together (next-step autoreset); those in `render` render
    off-screen frames of `size` x `size` pixels (dema.evaluation.rendering.RenderedEnv)."""
    import gymnasium as gym

    kwargs = {"max_episode_steps": max_episode_steps} if max_episode_steps else {}

    def make(i: int):
        if i in render:
            from dema.evaluation.rendering import RenderedEnv

            return RenderedEnv(gym_id, size, **kwargs)
        return gym.make(gym_id, **kwargs)

    return gym.vector.SyncVectorEnv([lambda i=i: make(i) for i in range(num_envs)],
                                    autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)


def _rendered_frames():
    from dema.evaluation.video import FrameSource

    return FrameSource(frame=lambda envs, obs, i: envs.envs[i].render(),
                       fps=lambda envs, i: envs.envs[i].metadata["render_fps"])


def run_episodes(agent_factory, gym_id: str, n: int, seed: int, target_return: float,
                 max_envs: int = 50, max_episode_steps: int = 0, recorder=None) -> Episodes:
    """Play `n` episodes with agents from `agent_factory(num_envs)`, conditioned on `target_return`;
    the episodes a `recorder` (dema.evaluation.video.EpisodeRecorder) wants are rendered to it."""

    def make_envs(num_envs: int, round_seed: int):
        render = tuple(recorder.in_round(round_seed - seed, num_envs)) if recorder else ()
        return make_vector_env(gym_id, num_envs, max_episode_steps, render, recorder.size if recorder else 480)

    return play_rounds(n, max_envs, seed, make_envs, lambda num_envs, _: agent_factory(num_envs), target_return,
                       _clip_to_box, recorder, _rendered_frames() if recorder else None)


def play_rounds(n: int, max_envs: int, seed: int, make_envs, make_agent, target_return: float,
                to_env_action, recorder=None, frames=None) -> Episodes:
    """`n` episodes in rounds of at most `max_envs` environments: round r's environments come from
    `make_envs(num_envs, round_seed)`, its agent from `make_agent(num_envs, round_seed)`, with
    round_seed = seed + the episodes played before it; `to_env_action(action, envs)` turns the
    agent's actions into the environments' (MuJoCo: clipped to the box; Atari: indices). A
    `recorder` gets the pictures of the episodes it wants, from `frames` (a video.FrameSource)."""
    out = Episodes()
    done_so_far = 0
    while done_so_far < n:
        num_envs = min(max_envs, n - done_so_far)
        round_seed = seed + done_so_far
        film = recorder.film(done_so_far, num_envs, frames) if recorder else None
        envs = make_envs(num_envs, round_seed)
        try:
            _one_round(make_agent(num_envs, round_seed), envs, round_seed, target_return, out, to_env_action, film)
        finally:
            if film is not None:
                film.close()
            envs.close()
        done_so_far += num_envs
    return out


def _clip_to_box(action: np.ndarray, envs) -> np.ndarray:
    return np.clip(action, envs.single_action_space.low, envs.single_action_space.high)


def _one_round(agent, envs, seed: int, target_return: float, out: Episodes, to_env_action, film=None) -> None:
    n = envs.num_envs
    obs, _ = envs.reset(seed=seed)
    if film is not None:
        film.begin(envs, obs)
    agent.reset(target_return)
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
