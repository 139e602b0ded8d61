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
    parse_dataset("mujoco/hopper/medium-v0")       -> env hopper,       preset hopper-medium (a Minari id)
    parse_dataset("mujoco/hopper/expert-v0")       -> env hopper,       no preset of the paper

A dataset no preset of the paper names takes its environment's defaults (`preset`): the MuJoCo
settings under the name "<env>-default" (hopper-default), maze2d's and Atari's own presets.

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
    frame_stack: int = 0  # Atari: frames stacked into one state, (frame_stack, 84, 84); 0: vector states
    discrete: bool = False  # Atari: actions are indices into the game's minimal action set
    # (random policy, best shipped behaviour policy) mean returns measured here in gym_id itself, 100
    # episodes each (docs/DATASETS.md, `dema collect ENV reference-scores`): the reference scores of the
    # Minari datasets dema writes. ref_min_score / ref_max_score stay D4RL's, for the D4RL-named data.
    measured_ref_scores: tuple[float, float] | None = None

    @property
    def atari(self) -> bool:
        return self.frame_stack > 0

    @property
    def state_shape(self) -> int | tuple[int, int, int]:
        """What the policy's state encoder takes: S, or (frame_stack, 84, 84) frames."""
        return (self.frame_stack, *ATARI_FRAME) if self.atari else self.obs_dim

    def normalize(self, raw_return: float) -> float:
        """D4RL-normalised score: 100 * (R - min) / (max - min); Atari: gamer-normalised,
        100 * (R - random) / (gamer - random)."""
        return 100.0 * (raw_return - self.ref_min_score) / (self.ref_max_score - self.ref_min_score)


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
# (random, gamer) returns of the gamer-normalised score, 100 * (R - random) / (gamer - random): the
# values Decision Transformer's and DeMa's Atari code use (shared/PAPER.md).
ATARI_SCORES: dict[str, tuple[float, float]] = {
    "Breakout": (2.0, 30.0),
    "Qbert": (164.0, 13455.0),
    "Pong": (-21.0, 15.0),
    "Seaquest": (68.0, 42055.0),
    "Asterix": (210.0, 8503.0),
    "Frostbite": (65.0, 4335.0),
    "Assault": (222.0, 742.0),
    "Gopher": (258.0, 2412.0),
}
# Return targets of the DeMa paper's Atari runs (raw game scores; ranges list both ends, the upper
# first: the headline target is the first).
ATARI_TARGETS: dict[str, tuple[float, ...]] = {
    "Breakout": (180.0, 90.0),
    "Qbert": (14000.0, 8000.0),
    "Pong": (20.0,),
    "Seaquest": (1750.0, 1150.0),
    "Asterix": (1100.0, 900.0),
    "Frostbite": (1700.0, 1200.0),
    "Assault": (1800.0, 1200.0),
    "Gopher": (6500.0,),
}
ATARI_FRAME = (84, 84)  # one preprocessed frame (grayscale, resized)
ATARI_FRAME_STACK = 4
ATARI_FRAME_SKIP = 4  # emulator frames per agent step (the action repeated, the last two max-pooled)
ATARI_NOOP_MAX = 30  # most random no-op steps at a reset
# DT's evaluation caps an episode at 108k emulator frames (27k agent steps at frame skip 4).
ATARI_MAX_FRAMES = 108_000


def _atari_env(game: str) -> EnvSpec:
    """An Atari game under the DT evaluation protocol (dema.evaluation.simulators): frame skip 4 with
    max-pool, 84x84 grayscale, 4 stacked frames, up to 30 no-ops, no sticky actions, minimal action set.
    Returns are raw game scores and stay unscaled (reward_scale 1), as in DT's Atari code."""
    low, high = ATARI_SCORES[game]
    return EnvSpec(game.lower(), f"ALE/{game}-v5", ATARI_FRAME[0] * ATARI_FRAME[1], ATARI_ACTIONS[game],
                   ATARI_MAX_FRAMES // ATARI_FRAME_SKIP, low, high, ATARI_TARGETS[game], reward_scale=1.0,
                   aliases=(game,), frame_stack=ATARI_FRAME_STACK, discrete=True)


def game_name(name: str) -> str:
    """"pong", "Pong", "ALE/Pong-v5" -> "Pong" (a key of ATARI_ACTIONS); ConfigError otherwise."""
    base = str(name).split("/")[-1].split("-")[0].lower()
    for game in ATARI_ACTIONS:
        if game.lower() == base:
            return game
    raise ConfigError(f"unknown Atari game {name!r}; known: {', '.join(ATARI_ACTIONS)}")


def require_ale():
    """ale_py, the simulator of the Atari games (it ships the ROMs), or a ConfigError saying how to
    install it: what both the collectors and the evaluation call before they open a game."""
    try:
        import ale_py
    except ImportError:
        raise ConfigError('Atari needs ale-py (it ships the ROMs): pip install -e ".[atari]"') from None
    return ale_py


ENVS: dict[str, EnvSpec] = {
    spec.name: spec
    for spec in [
        # measured_ref_scores: `dema collect ENV reference-scores` (100 episodes of random actions and of each
        # shipped policy, the best: tqc on all three), docs/DATASETS.md "Reference scores for v5"
        EnvSpec("hopper", "Hopper-v5", 11, 3, 1000, -20.272305, 3234.3, (3600.0, 1800.0),
                measured_ref_scores=(16.2, 3344.4)),
        EnvSpec("halfcheetah", "HalfCheetah-v5", 17, 6, 1000, -280.178953, 12135.0, (12000.0, 6000.0),
                measured_ref_scores=(-288.6, 11362.9)),
        EnvSpec("walker2d", "Walker2d-v5", 17, 6, 1000, 1.629008, 4592.3, (5000.0, 2500.0),
                measured_ref_scores=(1.9, 4164.2)),
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
        *[_atari_env(game) for game in ATARI_ACTIONS],
    ]
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
    env: str | None  # key of ENVS; None for the Atari presets (the game comes from the dataset's name)
    lr: float  # DeMa's learning rate (the DeMa paper's, per dataset)
    dema: dict = field(default_factory=dict)  # DeMa sizes: n_layer, embed_dim, d_model, d_state, context_len
    dt: dict = field(default_factory=dict)  # DT / DC / BC sizes: n_layer, n_head, embed_dim, d_model, context_len
    train: dict = field(default_factory=dict)  # TrainConfig sections over its (MuJoCo) defaults: {"optim": {...}}
    dt_lr: float | None = None  # DT / DC / BC's learning rate; None: the same as DeMa's
    # which model takes which sizes and rate: its family in the model registry (dema.models.registry.Family)


DT_GYM_LR = 1e-4  # Decision Transformer's gym code, every MuJoCo dataset (DC and BC are DT forks / DT's code)


def _mujoco(name: str, lr: float, embed: int = 128, context: int = 20, env: str = "") -> Preset:
    """MuJoCo-style preset. DeMa: 3 layers, d_state 64, embedding `embed`, d_model 128 on the
    medium-expert datasets and 64 elsewhere, learning rate `lr`. DT / DC / BC: DT's gym code (3 layers,
    1 head, width 128, learning rate 1e-4 whatever DeMa's: the paper's DT baseline is DT's own)."""
    d_model = 128 if name.endswith("medium-expert") else 64
    return Preset(name, env or name.split("-")[0], lr,
                  dema=dict(n_layer=3, embed_dim=embed, d_model=d_model, d_state=64, context_len=context),
                  dt=dict(n_layer=3, n_head=1, embed_dim=128, d_model=128, context_len=context), dt_lr=DT_GYM_LR)


ATARI_TRANSITIONS = 500_000  # DT's 1% of a game's DQN-replay, what the Atari schedule is sized for
ATARI_BATCH = 8  # DeMa's Atari code (DT's: 128)


def _atari(name: str, context: int) -> Preset:
    """Atari: 6 layers, width 128, K 30 (8 for Qbert and Frostbite); DT with 8 heads; DeMa's Atari
    code uses d_state 16 and lr 1e-4. Training as DeMa's (DT-derived) Atari code: batch 8, AdamW
    betas (0.9, 0.95), weight decay 1e-4 on weights only, grad clip 0.8, a linear warm-up of 512 * 20
    tokens, then a cosine from lr to 0 at 2 * dataset size * K * 3 tokens, floored at 10% of lr, 10 epochs
    (DT counts B * K tokens per update, so in updates: warm-up 10240 / (B K), decay 6 N / B,
    10 N / B updates for N = 500k transitions), an evaluation of 10 episodes per target after every
    epoch. Returns-to-go are unscaled (the game's EnvSpec has reward_scale 1)."""
    epoch = ATARI_TRANSITIONS // ATARI_BATCH
    train = {
        "optim": {"betas": [0.9, 0.95], "weight_decay": 1e-4, "decay_weights_only": True, "grad_clip": 0.8,
                  "batch_size": ATARI_BATCH, "warmup_steps": -(-512 * 20 // (ATARI_BATCH * context)),
                  "decay_steps": 2 * ATARI_TRANSITIONS * 3 // ATARI_BATCH, "min_lr_ratio": 0.1},
        "schedule": {"updates": 10 * epoch, "eval_every": epoch, "checkpoint_every": 5000, "log_every": 1000},
        "eval": {"episodes": 10, "train_episodes": 10},
    }
    return Preset(name, None, 1e-4,
                  dema=dict(n_layer=6, embed_dim=128, d_model=128, d_state=16, context_len=context),
                  dt=dict(n_layer=6, n_head=8, embed_dim=128, d_model=128, context_len=context,
                          max_ep_len=ATARI_MAX_FRAMES // 4),  # DT's timestep embedding spans an episode
                  train=train)


# DeMa's learning rates: 1e-4 for hopper-medium, hopper-medium-replay and walker2d-medium, 1e-3 for the
# other six MuJoCo datasets (DT / DC / BC: 1e-4 on all nine, DT's gym code); embedding 256 for
# hopper-medium and hopper-medium-replay (the paper).
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
# A Minari dataset id: namespace/name-vN, the namespace one or more levels (mujoco/hopper/medium-v0,
# D4RL/pointmaze/umaze-v2). Minari's own pattern (minari.dataset.minari_dataset.DATASET_ID_RE) makes the
# namespace and the version optional; dema asks for both, which is what tells an id from a file name.
MINARI_ID_FORM = "namespace/name-vN, e.g. mujoco/hopper/medium-v0: every level a name, the version at the end"
MINARI_ID = re.compile(r"(?P<namespace>[-\w]+(?:/[-\w]+)*)/(?P<name>[-\w]+?)-v(?P<version>\d+)")


@dataclass(frozen=True)
class DatasetRef:
    """What a dataset id or path says about the dataset, before any file is read."""

    text: str  # as given
    name: str  # the file or id name without folder and suffix: "hopper-medium-v5"; a Minari id's
    #            levels joined by dashes: "mujoco-hopper-medium-v0"
    base: str  # lower-case, version removed: "hopper-medium"
    version: int | None  # 5 for "-v5"
    env: EnvSpec | None
    preset: Preset | None
    minari: bool = False  # a Minari dataset id (namespace/name-vN)


def is_minari_id(text: str) -> bool:
    """Whether `text` has the form of a Minari dataset id, namespace/name-vN (it may also be a path)."""
    return MINARI_ID.fullmatch(str(text)) is not None


def dataset_name(text: str) -> str:
    """Short name of a dataset id or path: ".../hopper-medium-v5.hdf5" -> "hopper-medium-v5",
    "mujoco/hopper/medium-v0" -> "mujoco-hopper-medium-v0" (run names hold no slash)."""
    if is_minari_id(text):
        return str(text).replace("/", "-")
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


def env_by_gym_id(gym_id: str) -> EnvSpec | None:
    """The table's environment of a Gymnasium id of any version ("Hopper-v4" -> hopper), None if none."""
    def unversioned(i: str) -> str:
        return re.sub(r"-v\d+$", "", i.split(":")[-1]).lower()

    return next((spec for spec in ENVS.values()
                 if unversioned(gym_id) in {unversioned(i) for i in (spec.gym_id, *spec.aliases)}), None)


def _minari_levels(text: str) -> list[str]:
    """A Minari id's levels below the root, without the version: ["mujoco", "hopper", "medium"]."""
    match = MINARI_ID.fullmatch(str(text))
    return [*match.group("namespace").lower().split("/"), match.group("name").lower()]


def parse_dataset(text: str) -> DatasetRef:
    """Parse a dataset id, file name or path (see the module docstring). Never reads a file."""
    name = dataset_name(text)
    match = re.fullmatch(r"(.*)-v(\d+)", name)
    base = (match.group(1) if match else name).lower()
    version = int(match.group(2)) if match else None
    if is_minari_id(text):
        # env and preset from the last two levels (mujoco/hopper/medium -> hopper-medium), else the last one
        levels = _minari_levels(text)
        candidates = ["-".join(levels[-2:]), levels[-1]]
        hit = next((c for c in candidates if _longest_prefix(c, ENVS)), candidates[0])
        env_key, preset_key = _longest_prefix(hit, ENVS), _longest_prefix(hit, PRESETS)
        return DatasetRef(str(text), name, base, version, ENVS[env_key] if env_key else None,
                          PRESETS[preset_key] if preset_key else None, minari=True)
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


DEFAULT_SUFFIX = "-default"  # "hopper-default": the MuJoCo settings for a hopper dataset no preset names


def default_preset(env: str) -> Preset:
    """The sizes and learning rate of a dataset of environment `env` that no preset of the paper names:
    maze2d's and Atari's presets are their environment's already; any other environment (hopper, or
    one only a Minari dataset's recorded env spec names, e.g. ant) takes the paper's MuJoCo settings
    (DeMa: 3 layers, embedding 128, d_model 64, d_state 64, K 20; DT's gym sizes) at DT's gym learning
    rate, 1e-4 for every model, under the name "<env>-default"."""
    if env in PRESETS:  # maze2d-umaze, pong, ...: the environment's own preset
        return PRESETS[env]
    return _mujoco(env + DEFAULT_SUFFIX, DT_GYM_LR, env=env)


def preset_named(name: str) -> Preset:
    """The preset `--preset NAME` names: one of the paper's, or an environment's default ("hopper-default")."""
    if name in PRESETS:
        return PRESETS[name]
    if name.endswith(DEFAULT_SUFFIX) and re.fullmatch(r"[-\w]+", name[: -len(DEFAULT_SUFFIX)]):
        return default_preset(name[: -len(DEFAULT_SUFFIX)])
    raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}, or an environment's defaults "
                      f"(<env>{DEFAULT_SUFFIX}: {', '.join(n + DEFAULT_SUFFIX for n, e in ENVS.items() if not e.atari and n not in PRESETS)})")


def preset(name: str) -> Preset:
    """The preset for a dataset id or path: the paper's when the name matches one, else the defaults of
    the environment it names (`default_preset`); ConfigError listing the known ones when it names none."""
    ref = parse_dataset(name)
    if ref.preset is not None:
        return ref.preset
    if str(name) in PRESETS or str(name).endswith(DEFAULT_SUFFIX):
        return preset_named(str(name))
    if ref.env is not None:
        return default_preset(ref.env.name)
    if ref.minari:  # an environment dema's table does not hold: the id's environment level names it
        levels = _minari_levels(name)
        return default_preset(levels[-2] if len(levels) > 1 else levels[-1])
    if "/" in str(name) and not str(name).endswith(DATASET_SUFFIXES) and not Path(name).exists():
        raise ConfigError(f"{name}: no such file or folder, and not a Minari dataset id ({MINARI_ID_FORM}). Fix: give "
                          "an existing path, or a Minari id with its version")
    raise ConfigError(
        f"no preset for dataset {name!r}; presets exist for {', '.join(PRESETS)} "
        "(name the file after one of them, e.g. hopper-medium-v5.hdf5, or pick one with --preset)"
    )
