"""`dema collect GAME replay`: train DQN (Stable-Baselines3) and write every transition it saw, as DQN-replay.

DQN-replay (Agarwal et al.) is the replay of a DQN agent over its whole training run. This recipe
is that construction, on a budget you choose: Stable-Baselines3's DQN trained on the game with SB3's
Atari wrappers (`stable_baselines3.common.atari_wrappers`: NoopReset 30, MaxAndSkip 4, EpisodicLife,
FireReset, ClipReward, then 4 stacked frames), and a recorder under the training-only wrappers that
writes each agent step the game took (the frame it was taken on, the action, the RAW reward, the
end of the GAME, not of a life) with `ReplayWriter`, in the order they happened.

Where it differs from SB3's `AtariWrapper`: the frame is resized by dema's area interpolation
(`game.area_weights`, the frames of evaluation) instead of SB3's OpenCV `WarpFrame`, so no OpenCV is
needed and the data see the frames evaluation sees. Sticky actions are off (DQN-replay's agents
played with repeat_action_probability 0.25; DT's evaluation, ours, has none). Steps the wrappers
take themselves (FIRE after a reset, the no-op after a lost life) are real steps of the game and
are written too.

On a GPU (docs/DATASETS.md): `dema collect pong replay --steps 10000000 --device cuda`, the SB3
zoo's Atari DQN settings (buffer 100k, lr 1e-4, learning starts 100k, target update 1k, train freq
4, epsilon 1 -> 0.01 over the first 10%) are the defaults here. `--steps` counts agent steps.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from dema.data.collect.atari.game import area_weights
from dema.data.collect.atari.replay_writer import ReplayWriter, check_output
from dema.data.episodes import return_stats
from dema.envs import ATARI_FRAME, ATARI_SCORES, game_name, require_ale
from dema.errors import ConfigError

DQN_SETTINGS = dict(buffer_size=100_000, learning_rate=1e-4, learning_starts=100_000, target_update_interval=1000,
                    train_freq=4, gradient_steps=1, exploration_fraction=0.1, exploration_final_eps=0.01,
                    optimize_memory_usage=False)


def _wrappers():
    import gymnasium as gym

    class Resize(gym.ObservationWrapper):
        """Grayscale (210, 160) -> (84, 84, 1) uint8 by area interpolation (SB3's WarpFrame, without OpenCV)."""

        def __init__(self, env):
            super().__init__(env)
            height, width = env.observation_space.shape[:2]
            self.wy, self.wx = area_weights(height, ATARI_FRAME[0]), area_weights(width, ATARI_FRAME[1])
            self.observation_space = gym.spaces.Box(0, 255, (*ATARI_FRAME, 1), np.uint8)

        def observation(self, obs):
            frame = np.clip(np.rint(self.wy @ obs.astype(np.float64) @ self.wx.T), 0, 255).astype(np.uint8)
            return frame[..., None]

    class Recorder(gym.Wrapper):
        """Writes (frame before the step, action, raw reward, game over) for every agent step."""

        def __init__(self, env, writer: ReplayWriter):
            super().__init__(env)
            self.writer, self.resize = writer, Resize(env)
            self.frame, self.episode_return, self.returns = None, 0.0, []

        def reset(self, **kwargs):
            obs, info = self.env.reset(**kwargs)
            self.frame = self.resize.observation(obs)[..., 0]
            return obs, info

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.writer.add(self.frame, int(action), float(reward), bool(terminated or truncated))
            self.episode_return += float(reward)
            if terminated or truncated:
                self.returns.append(self.episode_return)
                self.episode_return = 0.0
            self.frame = self.resize.observation(obs)[..., 0]
            return obs, reward, terminated, truncated, info

    return Resize, Recorder


def make_env(game: str, seed: int, writer: ReplayWriter | None):
    """The SB3 Atari stack over a recorder: what the DQN trains on."""
    import gymnasium as gym
    from stable_baselines3.common import atari_wrappers as aw

    ale_py = require_ale()
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    gym.register_envs(ale_py)
    Resize, Recorder = _wrappers()
    env = gym.make(f"ALE/{game_name(game)}-v5", obs_type="grayscale", frameskip=1, repeat_action_probability=0.0,
                   full_action_space=False, max_num_frames_per_episode=108_000)
    env = aw.NoopResetEnv(env, noop_max=30)
    env = aw.MaxAndSkipEnv(env, skip=4)
    recorder = env = Recorder(env, writer) if writer is not None else env
    env = aw.EpisodicLifeEnv(env)
    if "FIRE" in env.unwrapped.get_action_meanings():
        env = aw.FireResetEnv(env)
    env = Resize(env)
    env = aw.ClipRewardEnv(env)
    env.reset(seed=seed)
    return env, recorder


def collect_replay(game: str, out: Path, steps: int, seed: int = 0, overwrite: bool = False, capacity: int = 100_000,
                   command: str = "", device: str = "auto", dqn: dict | None = None, log=print) -> tuple[Path, dict]:
    try:
        from stable_baselines3 import DQN
        from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack
    except ImportError:
        raise ConfigError('the replay recipe trains DQN with Stable-Baselines3: pip install -e ".[atari,sac]"') from None
    name = game_name(game)
    if steps < 1:
        raise ConfigError(f"--steps must be at least 1, got {steps}")
    settings = {**DQN_SETTINGS, **(dqn or {})}
    if "learning_starts" not in (dqn or {}):  # a short run still learns: at most a tenth of it is random
        settings["learning_starts"] = min(settings["learning_starts"], max(steps // 10, 1))
    settings["buffer_size"] = min(settings["buffer_size"], max(steps, 1))
    logs = check_output(out, name, overwrite)
    writer = ReplayWriter(logs, capacity)
    holder = {}

    def build():
        env, holder["recorder"] = make_env(name, seed, writer)
        return env

    venv = VecFrameStack(DummyVecEnv([build]), n_stack=4)
    model = DQN("CnnPolicy", venv, seed=seed, device=device, verbose=0, **settings)
    started = time.perf_counter()
    model.learn(total_timesteps=steps)
    seconds = time.perf_counter() - started
    recorder = holder["recorder"]
    finished = len(recorder.returns)  # games that ended; else the running one stands in (as written)
    returns = np.asarray(recorder.returns or [recorder.episode_return], dtype=np.float64)
    low, high = ATARI_SCORES[name]
    meta = {"game": name, "recipe": "replay", "command": command, "seed": seed, "algo": "sb3-dqn",
            "dqn": {k: v for k, v in settings.items()}, "protocol": "SB3 Atari wrappers over dema's frames",
            "transitions": int(writer.written + len(writer._rows["action"])), "episodes": int(len(returns)),
            "finished_games": finished,
            **return_stats(returns), "returns": returns.tolist(), "seconds": seconds}
    meta["normalized_return_mean"] = 100 * (meta["return_mean"] - low) / (high - low)
    meta["steps_per_second"] = meta["transitions"] / max(seconds, 1e-9)
    writer.close(meta)
    venv.close()
    log(f"{name} replay: DQN trained for {steps} agent steps, {finished} games finished"
        + ("" if finished else " (the return below is the unfinished game's so far)"))
    return logs.parent.parent, meta
