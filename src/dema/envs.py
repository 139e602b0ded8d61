"""Facts about environments and datasets, in one table, and the one parser of dataset ids.

Everything a trainer, collector or evaluator needs to know about an environment (its Gymnasium
id, sizes, episode length, reference scores, return targets, return-to-go scale) is an `EnvSpec`
in `ENVS`, and everything the paper fixes per dataset (model sizes, learning rate) is a `Preset` in
`PRESETS`. Every command reads these two tables through `parse_dataset`, so a dataset id means the
same thing everywhere:

    parse_dataset("hopper-medium-v2")              -> env hopper,       preset hopper-medium
    parse_dataset("datasets/hopper-medium-v5.hdf5") -> env hopper,       preset hopper-medium
    parse_dataset("hopper-medium-replay-small")    -> env hopper,       preset hopper-medium-replay
    parse_dataset("maze2d-umaze-v1")               -> env maze2d-umaze, preset maze2d-umaze
    parse_dataset("Hopper-v5")                     -> env hopper (a Gymnasium id), no preset

Sources. MuJoCo reference scores: D4RL's `infos.py` (REF_MIN_SCORE / REF_MAX_SCORE). Return
targets: the official Decision Transformer / DeMa code's raw-return targets (hopper 3600,
halfcheetah 12000, walker2d 5000) and half of each. Model sizes and learning rates: the DeMa paper
(Dai et al., NeurIPS 2024, appendix hyper-parameters) and its launch scripts; Decision
Transformer's gym code for DT. maze2d reference scores are computed here (docs/DATASETS.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from dema.errors import ConfigError


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
    aliases: tuple[str, ...] = ()  # other names datasets use for it (Gymnasium ids of other versions)

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
        # half of it; returns are a few hundred steps at the goal, hence the scale of 100. Gymnasium's
        # own PointMaze_*-v3 ids are not aliases: their observations are dicts (4-d without the goal).
        EnvSpec("maze2d-umaze", "dema.data.collect.maze:dema/maze2d-umaze-v3", 6, 2, 300, 13.97, 249.45,
                (250.0, 125.0), reward_scale=100.0, aliases=("dema/maze2d-umaze-v3",)),
        EnvSpec("maze2d-medium", "dema.data.collect.maze:dema/maze2d-medium-v3", 6, 2, 600, 9.08, 506.22,
                (500.0, 250.0), reward_scale=100.0, aliases=("dema/maze2d-medium-v3",)),
        EnvSpec("maze2d-large", "dema.data.collect.maze:dema/maze2d-large-v3", 6, 2, 800, 9.02, 667.46,
                (670.0, 335.0), reward_scale=100.0, aliases=("dema/maze2d-large-v3",)),
    ]
}

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


# ----------------------------------------------------------------------------- the paper's presets


@dataclass(frozen=True)
class Preset:
    """What the paper fixes for one dataset: the models' sizes and the learning rate.

    Everything else of the paper's MuJoCo protocol (AdamW, weight decay 1e-4, warm-up 10k,
    grad-norm clip 0.25, batch 64, 100k updates, 100 evaluation episodes) is the same for every
    dataset and is the default of `dema.run.config.TrainConfig`; the return-to-go scale is the
    environment's (`EnvSpec.reward_scale`).
    """

    name: str  # "hopper-medium", "maze2d-umaze", "atari", "breakout"
    env: str | None  # key of ENVS; None for Atari (no simulator wired yet)
    lr: float
    dema: dict = field(default_factory=dict)  # DeMa sizes: n_layer, embed_dim, d_model, d_state, context_len
    dt: dict = field(default_factory=dict)  # DT / DC / BC sizes: n_layer, n_head, embed_dim, d_model, context_len


def _mujoco(name: str, lr: float, embed: int = 128, context: int = 20, env: str = "") -> Preset:
    """MuJoCo-style preset. DeMa: 3 layers, d_state 64, embedding `embed`, d_model 128 on the
    medium-expert datasets and 64 elsewhere. DT / DC / BC: DT's gym code (3 layers, 1 head, width 128)."""
    d_model = 128 if name.endswith("medium-expert") else 64
    return Preset(name, env or name.split("-")[0], lr,
                  dema=dict(n_layer=3, embed_dim=embed, d_model=d_model, d_state=64, context_len=context),
                  dt=dict(n_layer=3, n_head=1, embed_dim=128, d_model=128, context_len=context))


def _atari(name: str, context: int) -> Preset:
    """Atari: 6 layers, width 128, K 30 (8 for Qbert and Frostbite); DT with 8 heads; DeMa's Atari
    code uses d_state 16 and lr 1e-4."""
    return Preset(name, None, 1e-4,
                  dema=dict(n_layer=6, embed_dim=128, d_model=128, d_state=16, context_len=context),
                  dt=dict(n_layer=6, n_head=8, embed_dim=128, d_model=128, context_len=context))


# Learning rates: 1e-4 for hopper-medium, hopper-medium-replay and walker2d-medium, 1e-3 for the
# other six MuJoCo datasets; embedding 256 for hopper-medium and hopper-medium-replay (the paper).
# maze2d-umaze "uses the MuJoCo settings", maze2d-medium K 8 with embedding 256 (the paper);
# maze2d-large is not in the paper and takes umaze's settings (our choice); the maze2d learning
# rate is DT's default, 1e-4.
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        _mujoco("hopper-medium", 1e-4, embed=256),
        _mujoco("hopper-medium-replay", 1e-4, embed=256),
        _mujoco("hopper-medium-expert", 1e-3),
        _mujoco("halfcheetah-medium", 1e-3),
        _mujoco("halfcheetah-medium-replay", 1e-3),
        _mujoco("halfcheetah-medium-expert", 1e-3),
        _mujoco("walker2d-medium", 1e-4),
        _mujoco("walker2d-medium-replay", 1e-3),
        _mujoco("walker2d-medium-expert", 1e-3),
        _mujoco("maze2d-umaze", 1e-4, env="maze2d-umaze"),
        _mujoco("maze2d-medium", 1e-4, embed=256, context=8, env="maze2d-medium"),
        _mujoco("maze2d-large", 1e-4, env="maze2d-large"),
        _atari("atari", 30),
        *[_atari(game.lower(), 8 if game in ("Qbert", "Frostbite") else 30) for game in ATARI_ACTIONS],
    ]
}


# ----------------------------------------------------------------------------- the id parser

DATASET_SUFFIXES = (".hdf5", ".h5", ".pkl", ".pickle")  # the file formats dema.data.load reads


@dataclass(frozen=True)
class DatasetRef:
    """What a dataset id or path says about the dataset, before any file is read."""

    text: str  # as given
    name: str  # the file or id name without folder and suffix: "hopper-medium-v5"
    base: str  # lower-case, version removed: "hopper-medium"
    version: int | None  # 5 for "-v5"
    env: EnvSpec | None
    preset: Preset | None


def dataset_name(text: str) -> str:
    """Short name of a dataset id or path: ".../hopper-medium-v5.hdf5" -> "hopper-medium-v5"."""
    name = Path(str(text)).name
    for suffix in DATASET_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _longest_prefix(base: str, keys) -> str | None:
    """The longest key that is `base` itself or its first dash-separated parts."""
    matches = [k for k in keys if base == k or base.startswith(k + "-")]
    return max(matches, key=len) if matches else None


def _env_by_alias(name: str) -> EnvSpec | None:
    lowered = name.lower()
    for spec in ENVS.values():
        ids = (spec.gym_id, *spec.aliases)
        if any(lowered in (i.lower(), re.sub(r"-v\d+$", "", i.lower())) for i in ids):
            return spec
    return None


def parse_dataset(text: str) -> DatasetRef:
    """Parse a dataset id, file name or path (see the module docstring). Never reads a file."""
    name = dataset_name(text)
    match = re.fullmatch(r"(.*)-v(\d+)", name)
    base = (match.group(1) if match else name).lower()
    version = int(match.group(2)) if match else None
    env_key = _longest_prefix(base, ENVS)
    preset_key = _longest_prefix(base, PRESETS)
    env = ENVS[env_key] if env_key else _env_by_alias(name)
    return DatasetRef(str(text), name, base, version, env, PRESETS[preset_key] if preset_key else None)


def env_spec(name: str) -> EnvSpec:
    """The environment of a short name ("hopper"), dataset id ("maze2d-umaze-v1"), path, or
    Gymnasium id ("Hopper-v5"); ConfigError listing the known ones otherwise."""
    spec = parse_dataset(name).env
    if spec is None:
        raise ConfigError(f"unknown environment {name!r}; known: {', '.join(ENVS)} "
                          f"(or their Gymnasium ids: {', '.join(s.gym_id.split(':')[-1] for s in ENVS.values())})")
    return spec


def preset(name: str) -> Preset:
    """The paper's preset for a dataset id or path; ConfigError listing the known ones otherwise."""
    found = parse_dataset(name).preset
    if found is None:
        raise ConfigError(
            f"no preset for dataset {name!r}; presets exist for {', '.join(PRESETS)} "
            "(name the file after one of them, e.g. hopper-medium-v5.hdf5, or pick one with --preset)"
        )
    return found
