"""Facts about environments and datasets, in one table.

Everything a trainer, collector or evaluator needs to know about an environment (its Gymnasium
id, sizes, episode length, D4RL reference scores, return targets) lives here, not in if/elif
chains. Reference scores are D4RL's (see ../shared/PAPER.md); return targets are the official
DT/DeMa code's raw-return targets.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnvSpec:
    name: str  # short name used in dataset ids: "hopper"
    gym_id: str  # Gymnasium id: "Hopper-v5"
    obs_dim: int
    act_dim: int
    max_episode_steps: int
    ref_min_score: float  # D4RL "random" reference return
    ref_max_score: float  # D4RL "expert" reference return
    return_targets: tuple[float, ...]  # raw returns the policy is conditioned on when acting
    reward_scale: float = 1000.0  # returns-to-go are divided by this

    def normalize(self, raw_return: float) -> float:
        """D4RL-normalised score: 100 * (R - min) / (max - min)."""
        return 100.0 * (raw_return - self.ref_min_score) / (self.ref_max_score - self.ref_min_score)


ENVS: dict[str, EnvSpec] = {
    spec.name: spec
    for spec in [
        EnvSpec("hopper", "Hopper-v5", 11, 3, 1000, -20.272305, 3234.3, (3600.0, 1800.0)),
        EnvSpec("halfcheetah", "HalfCheetah-v5", 17, 6, 1000, -280.178953, 12135.0, (12000.0, 6000.0)),
        EnvSpec("walker2d", "Walker2d-v5", 17, 6, 1000, 1.629008, 4592.3, (5000.0, 2500.0)),
        # maze2d: gymnasium-robotics PointMaze with flat observations (x, y, vx, vy, goal_x, goal_y),
        # registered by dema.data.collect.maze (needs the `maze` extra). Reference scores computed here
        # as D4RL did (random / noiseless waypoint controller, 100 episodes, docs/DATASETS.md), not
        # D4RL's numbers (other simulator version and controller). Targets: the controller's return and
        # half of it; returns are a few hundred steps at the goal, hence the scale of 100.
        EnvSpec("maze2d-umaze", "dema.data.collect.maze:dema/maze2d-umaze-v3", 6, 2, 300, 13.97, 249.45,
                (250.0, 125.0), reward_scale=100.0),
        EnvSpec("maze2d-medium", "dema.data.collect.maze:dema/maze2d-medium-v3", 6, 2, 600, 9.08, 506.22,
                (500.0, 250.0), reward_scale=100.0),
        EnvSpec("maze2d-large", "dema.data.collect.maze:dema/maze2d-large-v3", 6, 2, 800, 9.02, 667.46,
                (670.0, 335.0), reward_scale=100.0),
    ]
}


def env_spec(name: str) -> EnvSpec:
    """Look up an environment by short name ("hopper") or dataset id ("hopper-medium-v2", "maze2d-umaze-v1")."""
    lowered = name.lower()
    # The longest known name that is the id itself or its first dash-separated parts.
    matches = [k for k in ENVS if lowered == k or lowered.startswith(k + "-")]
    key = max(matches, key=len) if matches else lowered.split("-")[0]
    if key not in ENVS:
        known = ", ".join(sorted(ENVS))
        raise KeyError(f"unknown environment {name!r}; known: {known}")
    return ENVS[key]


# Atari games of the paper (DQN-replay, dopamine): size of each game's minimal action set, which
# is what dopamine's agents act in and what the replay's `action` indices count. The DQN-replay
# files do not store it; the loader reads it from here by the game's folder name.
ATARI_ACTIONS: dict[str, int] = {
    "Breakout": 4,
    "Qbert": 6,
    "Pong": 6,
    "Seaquest": 18,
    "Asterix": 9,
    "Frostbite": 18,
    "Assault": 7,
    "Gopher": 8,
}
