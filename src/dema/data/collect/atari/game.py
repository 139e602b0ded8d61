"""One Atari game in Python under Decision Transformer's evaluation protocol, with its console RAM.

The protocol is written down once, beside the evaluation's vector environment
(`dema.evaluation.simulators`: frame skip 4 with max-pool of the last two frames, 84x84 grayscale by
area interpolation, 0-30 random no-ops at reset, no sticky actions, minimal action set, the
108,000-frame cap). `Game` plays it on `ALEInterface` one frame at a time, so the scripted
controllers of `scripted` can read the RAM; its frames equal the vector env's up to rounding (a gray
level of 1 on a few pixels, tested).
"""

from __future__ import annotations

import numpy as np

from dema.envs import ATARI_FRAME, ATARI_FRAME_SKIP, ATARI_MAX_FRAMES, ATARI_NOOP_MAX, game_name, require_ale


def area_weights(n_in: int, n_out: int) -> np.ndarray:
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

    def __init__(self, game: str, seed: int = 0, max_frames: int = ATARI_MAX_FRAMES, noop_max: int = ATARI_NOOP_MAX):
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
        self._wy, self._wx = area_weights(height, ATARI_FRAME[0]), area_weights(width, ATARI_FRAME[1])

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
        for k in range(ATARI_FRAME_SKIP):
            reward += self.ale.act(self.actions[int(action)])
            if k >= ATARI_FRAME_SKIP - 2:
                last.append(self.ale.getScreenGrayscale())
            if self.ale.game_over() or self.ale.game_truncated():
                break
        screen = np.maximum(last[0], last[-1]) if last else self.ale.getScreenGrayscale()
        return self._frame(screen), reward, bool(self.ale.game_over()), bool(self.ale.game_truncated())
