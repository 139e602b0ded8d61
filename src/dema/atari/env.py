"""Atari games under Decision Transformer's evaluation protocol, through ale-py (which ships the ROMs).

The protocol (DT's Atari code, after Kaixhin's Rainbow `Env`; the DeMa code reuses it):

- the game's minimal action set (what DQN-replay's action indices count);
- no sticky actions (repeat_action_probability 0);
- each action repeated for 4 emulator frames, the observation the pixel-wise max of the last two;
- grayscale, resized to 84x84 (area interpolation);
- 4 stacked frames, oldest first; at an episode's start the missing older frames are zero (as
  dopamine's replay buffer, and so `TrajectoryDataset(frame_stack=4)`, stacks them);
- a random number of no-op steps (0 to 30) at every reset;
- no FIRE at reset and no end of episode on a lost life (the agent must press FIRE itself);
- an episode cap of 108,000 emulator frames (27,000 decisions), as DT's `max_num_frames_per_episode`;
- raw (unclipped) rewards: scores are game scores.

`vector_env` is ale-py's C++ `AtariVectorEnv` with exactly these settings (evaluation). `Game` is one
game in Python on `ALEInterface` with the same preprocessing plus the console RAM, for the scripted
controllers of `dema.atari.collect`; its frames equal the vector env's up to rounding (a gray level
of 1 on a few pixels, tested).
"""

from __future__ import annotations

import numpy as np

from dema.envs import ATARI_ACTIONS, ATARI_FRAME, ATARI_FRAME_STACK, ATARI_MAX_FRAMES
from dema.errors import ConfigError

FRAME_SKIP = 4
NOOP_MAX = 30


def game_name(name: str) -> str:
    """"pong", "Pong", "ALE/Pong-v5" -> "Pong" (a key of dema.envs.ATARI_ACTIONS); ConfigError otherwise."""
    base = str(name).split("/")[-1].split("-")[0].lower()
    for game in ATARI_ACTIONS:
        if game.lower() == base:
            return game
    raise ConfigError(f"unknown Atari game {name!r}; known: {', '.join(ATARI_ACTIONS)}")


def require_ale():
    """ale_py, or a ConfigError saying how to install it."""
    try:
        import ale_py
    except ImportError:
        raise ConfigError('Atari needs ale-py (it ships the ROMs): pip install -e ".[atari]"') from None
    return ale_py


def vector_env(game: str, num_envs: int, max_frames: int = ATARI_MAX_FRAMES, stack: int = ATARI_FRAME_STACK,
               threads: int = 1, noop_max: int = NOOP_MAX):
    """`num_envs` copies of `game` under the DT protocol (module docstring): observations (N, stack, 84, 84)
    uint8, actions indices into the minimal action set, next-step autoreset."""
    require_ale()
    from ale_py.vector_env import AtariVectorEnv

    return AtariVectorEnv(
        game_name(game).lower(), num_envs, num_threads=threads, max_num_frames_per_episode=max_frames,
        repeat_action_probability=0.0, full_action_space=False, img_height=ATARI_FRAME[0],
        img_width=ATARI_FRAME[1], grayscale=True, stack_num=stack, frameskip=FRAME_SKIP, maxpool=True,
        noop_max=noop_max, episodic_life=False, reward_clipping=False, use_fire_reset=False,
    )


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of area interpolation (each output pixel the mean of the input area it covers)."""
    scale = n_in / n_out
    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        lo, hi = i * scale, (i + 1) * scale
        for j in range(int(np.floor(lo)), int(np.ceil(hi))):
            weights[i, j] = min(hi, j + 1) - max(lo, j)
    return weights / scale


class Game:
    """One game under the DT protocol in Python, with its RAM (for scripted controllers).

        game = Game("Pong", seed=0)
        frame = game.reset()                  # (84, 84) uint8, after 0-30 random no-ops
        frame, reward, terminal, truncated = game.step(action)   # action: index in the minimal set
        game.ram                              # (128,) uint8 console RAM after the last step
    """

    def __init__(self, game: str, seed: int = 0, max_frames: int = ATARI_MAX_FRAMES, noop_max: int = NOOP_MAX):
        ale_py = require_ale()
        self.name = game_name(game)
        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
        self.ale = ale_py.ALEInterface()
        self.ale.setInt("random_seed", int(seed) % 2**31)
        self.ale.setFloat("repeat_action_probability", 0.0)
        self.ale.setInt("frame_skip", 1)
        self.ale.setInt("max_num_frames_per_episode", int(max_frames))
        self.ale.loadROM(ale_py.roms.get_rom_path(self.name.lower()))
        self.actions = self.ale.getMinimalActionSet()
        self.rng, self.noop_max = np.random.default_rng(seed), int(noop_max)
        height, width = self.ale.getScreenDims()
        self._wy, self._wx = _area_weights(height, ATARI_FRAME[0]), _area_weights(width, ATARI_FRAME[1])

    @property
    def n_actions(self) -> int:
        return len(self.actions)

    @property
    def ram(self) -> np.ndarray:
        return self.ale.getRAM()

    def _frame(self, screen: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(self._wy @ screen.astype(np.float64) @ self._wx.T), 0, 255).astype(np.uint8)

    def reset(self) -> np.ndarray:
        self.ale.reset_game()
        for _ in range(int(self.rng.integers(0, self.noop_max + 1))):
            self.ale.act(self.actions[0])
            if self.ale.game_over():
                self.ale.reset_game()
        return self._frame(self.ale.getScreenGrayscale())

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool]:
        """-> (frame, reward summed over the 4 frames, terminal (game over), truncated (frame cap))."""
        reward, last = 0.0, []
        for k in range(FRAME_SKIP):
            reward += self.ale.act(self.actions[int(action)])
            if k >= FRAME_SKIP - 2:
                last.append(self.ale.getScreenGrayscale())
            if self.ale.game_over() or self.ale.game_truncated():
                break
        screen = np.maximum(last[0], last[-1]) if last else self.ale.getScreenGrayscale()
        return self._frame(screen), reward, bool(self.ale.game_over()), bool(self.ale.game_truncated())
