"""The `scripted` and `random` recipes: a controller reading the console RAM, epsilon-random levels.

Every episode plays under the DT evaluation protocol (`game.Game`) and is written whole with
`ReplayWriter` (a level's share is reached by its last episode, which is finished). The returns per
level are printed and kept in OUT/<Game>/dema_collect.json.

RAM addresses (the AtariARI annotations, checked against the screen here): Pong player paddle y
51, ball x 49, ball y 54 (0 while no ball is in play; paddle centre = y - 6, ball centre = y - 12
in screen rows); Breakout paddle x 72, ball x 99, ball y 101 (0 before the ball is launched).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from dema.data.collect.atari.game import Game
from dema.data.collect.atari.replay_writer import ReplayWriter, check_output
from dema.data.episodes import return_stats
from dema.envs import ATARI_SCORES, game_name
from dema.errors import ConfigError

DEFAULT_LEVELS = (0.02, 0.1, 0.25, 0.5, 1.0)  # 0.02, not 0: a perfect Pong rally can last to the frame cap


class PongController:
    """Moves the paddle to where the ball will cross the paddle's column (walls reflected), or
    follows the ball while it moves away. Actions: 0 NOOP, 2 up (RIGHT), 3 down (LEFT)."""

    PADDLE_X, TOP, BOTTOM = 189, 52, 206  # RAM units

    def __init__(self, offset: int = -4, dead_zone: int = 6):
        self.offset, self.dead_zone = offset, dead_zone
        self.previous: tuple[int, int] | None = None

    def reset(self) -> None:
        self.previous = None

    def __call__(self, ram: np.ndarray) -> int:
        paddle, ball_y, ball_x = int(ram[51]), int(ram[54]), int(ram[49])
        target = 125.0  # the middle while no ball is in play
        if ball_y and self.previous and self.previous[0]:
            vy, vx = ball_y - self.previous[0], ball_x - self.previous[1]
            target = float(ball_y)
            if vx > 0:  # coming towards us: where it meets our column, bounced off the walls
                y = ball_y + vy * (self.PADDLE_X - ball_x) / vx
                span = self.BOTTOM - self.TOP
                y = (y - self.TOP) % (2 * span)
                target = self.TOP + (y if y <= span else 2 * span - y)
        self.previous = (ball_y, ball_x)
        error = target - 6 + self.offset - paddle  # ball centre - paddle centre, in RAM units
        if error > self.dead_zone:
            return 3
        if error < -self.dead_zone:
            return 2
        return 0


class BreakoutController:
    """FIRE while no ball is in play, else the paddle under the ball. Actions: 0 NOOP, 1 FIRE, 2 RIGHT, 3 LEFT."""

    def __init__(self, offset: int = -8, dead_zone: int = 3):
        self.offset, self.dead_zone = offset, dead_zone

    def reset(self) -> None:
        pass

    def __call__(self, ram: np.ndarray) -> int:
        paddle, ball_x, ball_y = int(ram[72]), int(ram[99]), int(ram[101])
        if ball_y == 0:
            return 1
        error = ball_x + self.offset - paddle
        if error > self.dead_zone:
            return 2
        if error < -self.dead_zone:
            return 3
        return 0


CONTROLLERS = {"Pong": PongController, "Breakout": BreakoutController}


def play_episode(game: Game, controller, epsilon: float, rng: np.random.Generator, writer: ReplayWriter | None,
                 max_steps: int = 0) -> tuple[float, int]:
    """One episode: the controller's action, or a random one with probability epsilon. -> (return, length)."""
    frame = game.reset()
    if controller is not None:
        controller.reset()
    total, steps = 0.0, 0
    while True:
        action = controller(game.ram) if controller is not None else 0
        if controller is None or rng.random() < epsilon:
            action = int(rng.integers(game.n_actions))
        next_frame, reward, terminal, truncated = game.step(action)
        steps += 1
        cut = bool(max_steps and steps >= max_steps)
        if writer is not None:
            # dopamine's DQN agent stores terminal=True at EVERY episode end (end_episode), game over
            # or step cap, and the layout has no timeout flag: the same here, or the reader would
            # join a cut episode to the next one
            writer.add(frame, action, reward, terminal or truncated or cut)
        total += reward
        frame = next_frame
        if terminal or truncated or cut:
            return total, steps


def collect_scripted(game: str, out: Path, steps: int, seed: int = 0, levels: tuple[float, ...] = DEFAULT_LEVELS,
                     overwrite: bool = False, capacity: int = 100_000, max_episode_steps: int = 0,
                     command: str = "", recipe: str = "scripted", log=print) -> tuple[Path, dict]:
    """Collect about `steps` transitions, an equal share at each epsilon level (whole episodes)."""
    name = game_name(game)
    if recipe == "scripted" and name not in CONTROLLERS:
        raise ConfigError(f"the scripted recipe has controllers for {', '.join(CONTROLLERS)}, not {name}; "
                          "use the random or replay recipe")
    if steps < 1:
        raise ConfigError(f"--steps must be at least 1, got {steps}")
    if any(not 0.0 <= e <= 1.0 for e in levels) or not levels:
        raise ConfigError(f"--epsilons must be probabilities in [0, 1], got {list(levels)}")
    logs = check_output(out, name, overwrite)
    writer = ReplayWriter(logs, capacity)
    rng = np.random.default_rng(seed)
    env = Game(name, seed=seed)
    controller = CONTROLLERS[name]() if recipe == "scripted" else None
    per_level, started = [], time.perf_counter()
    share = -(-steps // len(levels))
    for epsilon in levels:
        returns, lengths = [], []
        while sum(lengths) < share:
            ret, length = play_episode(env, controller, epsilon, rng, writer, max_episode_steps)
            returns.append(ret)
            lengths.append(length)
        stats = return_stats(np.asarray(returns))
        per_level.append({"epsilon": epsilon, "episodes": len(returns), "transitions": int(sum(lengths)), **stats,
                          "returns": returns})
        log(f"{name} epsilon {epsilon:g}: {len(returns)} episodes, {sum(lengths)} transitions, return "
            f"{stats['return_mean']:.1f} +- {stats['return_std']:.1f} (min {stats['return_min']:.0f}, max "
            f"{stats['return_max']:.0f})")
    seconds = time.perf_counter() - started
    low, high = ATARI_SCORES[name]
    all_returns = [r for level in per_level for r in level["returns"]]
    meta = {"game": name, "recipe": recipe, "command": command, "seed": seed, "levels": per_level,
            "controller": type(controller).__name__ if controller else None, "protocol": "DT (dema.evaluation.simulators)",
            "transitions": int(sum(level["transitions"] for level in per_level)), "episodes": len(all_returns),
            **return_stats(np.asarray(all_returns)),
            "seconds": seconds}
    meta["normalized_return_mean"] = 100 * (meta["return_mean"] - low) / (high - low)
    meta["steps_per_second"] = meta["transitions"] / max(seconds, 1e-9)
    writer.close(meta)
    return logs.parent.parent, meta
