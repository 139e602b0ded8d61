"""Run a behaviour policy in N vectorised copies of an environment and record D4RL transitions.

Layout of a collection (`rollout`): the step budget is split into N streams, one per sub-env
(stream i gets `steps // N` steps, the first `steps % N` streams one more). Each stream is what
D4RL's single-env collector would record: episodes one after the other, an episode ends at
termination (`terminals=1`) or at the 1000-step time limit (`timeouts=1`), and the stream's last,
unfinished episode is cut by the budget and marked `timeouts=1`. The streams are concatenated, so
every episode is contiguous in the file. Splitting by streams rather than keeping "the first
episodes to finish" avoids a bias toward short episodes.

The vector env uses Gymnasium's SAME_STEP autoreset: when a sub-env's episode ends, `step` returns
the first observation of the next episode and puts the real last observation in
`info["final_obs"]`, which is what `next_observations` needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from tqdm import tqdm


@dataclass
class Stage:
    """One policy run for a number of steps; a recipe is a list of stages."""

    label: str  # "sac-Hopper stochastic, noise 0.3"
    policy: object  # MlpPolicy | RandomPolicy (anything with act(obs, t, rng, deterministic))
    steps: int
    deterministic: bool = False
    noise_std: float = 0.0  # Gaussian noise added to the action, in units of half the action range


def make_vec_env(env_id: str, num_envs: int, mode: str = "sync", **env_kwargs) -> gym.vector.VectorEnv:
    """N copies of env_id with SAME_STEP autoreset (see the module docstring)."""
    return gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode=mode,
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        **env_kwargs,
    )


def rollout(
    env_id: str,
    stage: Stage,
    num_envs: int,
    seed: int,
    vector_mode: str = "sync",
    progress: tqdm | None = None,
) -> dict[str, np.ndarray]:
    """Collect `stage.steps` transitions; returns D4RL arrays (float32 / bool), streams concatenated."""
    num_envs = max(1, min(num_envs, stage.steps))
    per_env = np.full(num_envs, stage.steps // num_envs)
    per_env[: stage.steps % num_envs] += 1
    length = int(per_env.max())
    rng = np.random.default_rng(seed)
    envs = make_vec_env(env_id, num_envs, vector_mode)
    try:
        obs_dim = envs.single_observation_space.shape[0]
        act_dim = envs.single_action_space.shape[0]
        low = envs.single_action_space.low.astype(np.float64)
        high = envs.single_action_space.high.astype(np.float64)
        buf = {
            "observations": np.zeros((num_envs, length, obs_dim), np.float32),
            "actions": np.zeros((num_envs, length, act_dim), np.float32),
            "rewards": np.zeros((num_envs, length), np.float32),
            "terminals": np.zeros((num_envs, length), bool),
            "timeouts": np.zeros((num_envs, length), bool),
            "next_observations": np.zeros((num_envs, length, obs_dim), np.float32),
        }
        obs, _ = envs.reset(seed=seed)  # sub-env i is seeded with seed + i
        t = np.zeros(num_envs, dtype=np.int64)  # step within the current episode, per sub-env
        for j in range(length):
            action = stage.policy.act(obs, t, rng, stage.deterministic)
            if stage.noise_std > 0:
                action = action + stage.noise_std * 0.5 * (high - low) * rng.standard_normal(action.shape)
            action = np.clip(action, low, high)
            next_obs, reward, terminated, truncated, info = envs.step(action.astype(np.float32))
            real_next = next_obs.copy()
            if "_final_obs" in info:
                for i in np.flatnonzero(info["_final_obs"]):
                    real_next[i] = info["final_obs"][i]
            buf["observations"][:, j] = obs
            buf["actions"][:, j] = action
            buf["rewards"][:, j] = reward
            buf["terminals"][:, j] = terminated
            buf["timeouts"][:, j] = truncated & ~terminated  # one end marker per episode
            buf["next_observations"][:, j] = real_next
            done = terminated | truncated
            t = np.where(done, 0, t + 1)
            obs = next_obs
            if progress is not None:
                progress.update(int((per_env > j).sum()))
    finally:
        envs.close()
    streams = []
    for i in range(num_envs):
        n = int(per_env[i])
        stream = {k: v[i, :n] for k, v in buf.items()}
        if not (stream["terminals"][-1] or stream["timeouts"][-1]):
            stream["timeouts"][-1] = True  # the budget cut this episode
        streams.append(stream)
    return {k: np.concatenate([s[k] for s in streams]) for k in buf}


def concatenate(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Join collections one after the other (every part ends with an episode end)."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
