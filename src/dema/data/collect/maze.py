"""maze2d: D4RL's recipe in gymnasium-robotics PointMaze (a waypoint controller plus noise).

D4RL (scripts/generation/generate_maze2d_datasets.py) drove a point mass through a maze with a
PD controller towards waypoints on the shortest cell path to the goal, added N(0, 0.5^2) noise to
every action, and relabelled a sparse reward (1 within reach of the goal). Its reference scores
are the mean returns of a random policy (min) and of the noiseless controller (max) in the
evaluation environment. Here, in `PointMaze_{UMaze,Medium,Large}-v3` (gymnasium-robotics's port of
maze2d, sparse reward: 1 when within 0.45 of the goal):

- controller: breadth-first distances from the goal cell; in any other cell the waypoint is the
  centre of the neighbouring cell one step closer, in the goal cell it is the goal itself; action
  = clip(10 * (waypoint - xy) - 1 * velocity, -1, 1) (D4RL's gains p = 10, d = -1); noise std 0.5.
- episodes: one per environment episode (random start and goal from the env's reset, the goal kept
  when reached, 300 / 600 / 800 steps, then timeouts=1). D4RL instead chained goals in one endless
  stream and marked each goal change as a timeout; resetting per episode makes the data have the
  same episode structure as the evaluation, whose return counts the steps spent at the goal.
- observations: (x, y, vx, vy, goal_x, goal_y). The goal is part of the observation because it
  changes from episode to episode (D4RL's maze2d observations had no goal, its evaluation goal was
  fixed).
- sizes: D4RL's (umaze 1M, medium 2M, large 4M transitions).
- reference scores: random and controller mean returns over 100 episodes (reset seeds 10000+),
  stored in the file's metadata as `ref_min_score` / `ref_max_score`.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from dema.data.collect.policies import RandomPolicy
from dema.data.collect.rollout import Stage, rollout
from dema.data.collect.writer import check_writable, write_hdf5
from dema.data.episodes import collection_stats, episode_returns
from dema.errors import ConfigError
from dema.provenance import versions

P_GAIN, D_GAIN = 10.0, -1.0  # D4RL WaypointController defaults
NOISE_STD = 0.5  # D4RL generate_maze2d_datasets.py --noisy
REF_EPISODES, REF_SEED = 100, 10_000


@dataclass(frozen=True)
class MazeSpec:
    name: str  # "maze2d-umaze"
    base_id: str  # gymnasium-robotics id: "PointMaze_UMaze-v3"
    max_episode_steps: int
    default_steps: int

    @property
    def gym_id(self) -> str:
        """The flat-observation env registered below, importable by any `gym.make` caller."""
        return f"{__name__}:dema/{self.name}-v3"


MAZES = {
    m.name: m
    for m in [
        MazeSpec("maze2d-umaze", "PointMaze_UMaze-v3", 300, 1_000_000),
        MazeSpec("maze2d-medium", "PointMaze_Medium-v3", 600, 2_000_000),
        MazeSpec("maze2d-large", "PointMaze_Large-v3", 800, 4_000_000),
    ]
}


def _register() -> None:
    try:
        import gymnasium_robotics
    except ImportError as exc:
        raise ConfigError("maze2d needs gymnasium-robotics: pip install 'dema[maze]'") from exc
    gym.register_envs(gymnasium_robotics)


class FlatGoalObservation(gym.ObservationWrapper):
    """PointMaze's dict observation -> (x, y, vx, vy, goal_x, goal_y), a plain Box for sequence models."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(6,), dtype=np.float64)

    def observation(self, obs: dict) -> np.ndarray:
        return np.concatenate([obs["observation"], obs["desired_goal"]])


def make_flat_maze(base_id: str, **kwargs) -> gym.Env:
    """gymnasium-robotics PointMaze (its defaults: sparse reward, goal kept when reached) with flat observations."""
    _register()
    return FlatGoalObservation(gym.make(base_id, **kwargs))


# `gym.make("dema.data.collect.maze:dema/maze2d-umaze-v3")` imports this module, which registers these;
# the time limit comes from the PointMaze registration inside.
for _spec in MAZES.values():
    if f"dema/{_spec.name}-v3" not in gym.registry:
        gym.register(f"dema/{_spec.name}-v3", entry_point=make_flat_maze, kwargs={"base_id": _spec.base_id},
                     disable_env_checker=True)


class WaypointController:
    """Shortest-cell-path PD controller for one maze (one instance serves all sub-envs)."""

    def __init__(self, maze) -> None:
        self.maze = maze  # gymnasium_robotics Maze: maze_map, cell_xy_to_rowcol, cell_rowcol_to_xy
        grid = np.array([[1 if c == 1 else 0 for c in row] for row in maze.maze_map])
        self.free = grid == 0
        self._dist_cache: dict[tuple[int, int], np.ndarray] = {}

    def _distances(self, goal_cell: tuple[int, int]) -> np.ndarray:
        """Breadth-first step counts from goal_cell to every free cell (inf in walls)."""
        if goal_cell not in self._dist_cache:
            dist = np.full(self.free.shape, np.inf)
            dist[goal_cell] = 0
            queue = deque([goal_cell])
            while queue:
                r, c = queue.popleft()
                for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                    if self.free[nr, nc] and dist[nr, nc] == np.inf:
                        dist[nr, nc] = dist[r, c] + 1
                        queue.append((nr, nc))
            self._dist_cache[goal_cell] = dist
        return self._dist_cache[goal_cell]

    def waypoint(self, xy: np.ndarray, goal: np.ndarray) -> np.ndarray:
        cell = tuple(int(v) for v in self.maze.cell_xy_to_rowcol(xy))
        goal_cell = tuple(int(v) for v in self.maze.cell_xy_to_rowcol(goal))
        if cell == goal_cell or not self.free[cell]:
            return goal
        dist = self._distances(goal_cell)
        r, c = cell
        neighbours = [(r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)]
        best = min(neighbours, key=lambda rc: dist[rc])
        return self.maze.cell_rowcol_to_xy(np.array(best))

    name = "waypoint-controller"
    source = "dema.data.collect.maze.WaypointController (p 10, d -1)"

    def act(self, obs: np.ndarray, t=None, rng=None, deterministic=True) -> np.ndarray:
        """(N, 6) observations (x, y, vx, vy, gx, gy) -> (N, 2) actions in [-1, 1]."""
        actions = np.empty((len(obs), 2))
        for i, o in enumerate(obs):
            target = self.waypoint(o[:2], o[4:6])
            actions[i] = P_GAIN * (target - o[:2]) + D_GAIN * o[2:4]
        return np.clip(actions, -1.0, 1.0)


def maze_rollout(spec: MazeSpec, policy: str, steps: int, num_envs: int, seed: int, noise: float,
                 progress: tqdm | None = None) -> dict[str, np.ndarray]:
    """The controller or random actions through the generic `rollout` (streams per sub-env)."""
    env_id = f"dema/{spec.name}-v3"
    if policy == "random":
        actor = RandomPolicy(-np.ones(2), np.ones(2))
    else:
        probe = gym.make(env_id)
        actor = WaypointController(probe.unwrapped.maze)  # the layout is fixed: one probe env serves all
        probe.close()
    # The action range is [-1, 1], so the noise in half-ranges is D4RL's N(0, noise^2) itself.
    stage = Stage(policy, actor, steps, deterministic=True, noise_std=noise)
    return rollout(env_id, stage, num_envs, seed, "sync", progress)


def reference_scores(spec: MazeSpec, episodes: int = REF_EPISODES, num_envs: int = 10) -> dict[str, float]:
    """D4RL's way: mean return of random actions (min) and of the noiseless controller (max)."""
    scores = {}
    num_envs = min(num_envs, episodes)  # whole episodes per sub-env: episodes * max steps in all
    for key, policy in (("ref_min_score", "random"), ("ref_max_score", "controller")):
        data = maze_rollout(spec, policy, episodes * spec.max_episode_steps, num_envs, REF_SEED, 0.0)
        returns = episode_returns(data["rewards"], data["terminals"], data["timeouts"])
        scores[key] = float(returns.mean())
        scores[key.replace("score", "episodes")] = int(len(returns))
    return scores


def collect_maze(name: str, recipe: str, out: Path, steps: int | None, seed: int, num_envs: int,
                 overwrite: bool, progress: bool, command: str,
                 ref_episodes: int = REF_EPISODES) -> tuple[Path, dict]:
    """`dema collect maze2d-umaze controller|random`: collect, score, write."""
    if name not in MAZES:
        raise ConfigError(f"unknown maze {name!r}; choose one of {', '.join(MAZES)}")
    if recipe not in ("controller", "random"):
        raise ConfigError(f"unknown maze2d recipe {recipe!r}; choose controller (D4RL's) or random")
    _register()
    spec = MAZES[name]
    out = Path(out)
    check_writable(out, overwrite)
    total = steps if steps is not None else spec.default_steps
    if total <= 0:
        raise ConfigError(f"--steps must be positive, got {total}")
    start = time.perf_counter()
    bar = tqdm(total=total, desc=f"{name}-{recipe}", unit="step", disable=not progress, smoothing=0.05)
    noise = NOISE_STD if recipe == "controller" else 0.0
    data = maze_rollout(spec, recipe, total, num_envs, seed, noise, bar)
    bar.close()
    seconds = time.perf_counter() - start
    refs = reference_scores(spec, ref_episodes)
    lo, hi = refs["ref_min_score"], refs["ref_max_score"]
    stats = collection_stats(data, lambda mean: 100 * (mean - lo) / (hi - lo))
    meta = {
        "env_id": spec.base_id,
        "gym_id": spec.gym_id,
        "env_name": name,
        "recipe": f"maze2d {recipe}" + (f" (waypoint controller, action noise N(0, {NOISE_STD}^2))" if noise else ""),
        "policy": "waypoint controller (p 10, d -1)" if recipe == "controller" else "uniform random actions",
        "seed": seed,
        "steps": int(total),
        "num_envs": int(min(num_envs, total)),
        "observation_layout": "x, y, vx, vy, goal_x, goal_y",
        "reward": "sparse: 1 when within 0.45 of the goal",
        "episode_stats": stats,
        **stats,
        **refs,
        "ref_scores_protocol": f"mean return over {ref_episodes} episodes, reset seeds {REF_SEED}+, noiseless controller / uniform random",
        "collect_seconds": round(seconds, 2),
        "steps_per_second": round(total / seconds, 1),
        "versions": versions(),
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_hdf5(out, data, meta, overwrite=overwrite)
    return out, meta
