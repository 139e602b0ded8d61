"""D4RL-named recipes: which behaviour policies, with what noise, for how many steps.

| recipe | what it is | default size |
| --- | --- | --- |
| `random` | uniform actions | 1M |
| `medium` | the medium policy, stochastic | 1M |
| `expert` | the expert policy, stochastic | 1M |
| `medium-expert` | `medium` then `expert`, concatenated (D4RL's construction) | 2M (1M + 1M) |
| `medium-replay` | APPROXIMATION of D4RL's (the replay buffer of a SAC run up to the medium level): rollouts of a ladder of weaker-to-medium policies, some with Gaussian action noise, weakest first | D4RL v2's sizes |
| `sac-replay` | the faithful recipe: SAC trained until the medium level, whole replay buffer (see `sac_replay.py`) | until medium |

The level -> policy table follows the table "A mapping onto the D4RL recipe" of the shipped
policies' README (behavior_policies/README.md beside this file): medium is about a third of expert.
Where the README offers a choice, the picks are:
hopper medium = sac stochastic (D4RL's medium policy was a SAC, normalised about 55 here against
D4RL's 44), halfcheetah medium = ppo stochastic (44; the alternative, ARS, is deterministic), walker2d
medium = ppo stochastic (59).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dema.data.collect.policies import MlpPolicy, RandomPolicy, load_policy
from dema.data.collect.rollout import Stage
from dema.envs import EnvSpec
from dema.errors import ConfigError, DataError

# File names of the behaviour policies use the MuJoCo class name: "sac-Hopper.npz".
POLICY_ENV_NAMES = {"hopper": "Hopper", "halfcheetah": "HalfCheetah", "walker2d": "Walker2d"}


@dataclass(frozen=True)
class Choice:
    """A policy (`{algo}-{Env}.npz`, or "random") acted with some noise, for a share of the steps."""

    algo: str
    deterministic: bool = False
    noise_std: float = 0.0  # Gaussian action noise, in units of half the action range
    share: float = 1.0  # of the recipe's steps (medium-replay ladders)


LEVELS: dict[str, dict[str, Choice]] = {
    "hopper": {"expert": Choice("tqc"), "medium": Choice("sac")},
    "halfcheetah": {"expert": Choice("tqc"), "medium": Choice("ppo")},
    "walker2d": {"expert": Choice("sac"), "medium": Choice("ppo")},
}

# medium-replay approximation: weakest first, as a SAC run's buffer fills from random to medium.
# Weak policies from the README's table (normalised score in brackets): hopper a2c (21), ppo_old
# (32); halfcheetah ppo_old (17), a2c (27); walker2d a2c (11), ars (37, deterministic).
_LADDER_SHARES = (0.10, 0.20, 0.20, 0.15, 0.15, 0.20)


def _ladder(weak: str, mid: str, medium: str, mid_deterministic: bool = False) -> list[Choice]:
    shares = _LADDER_SHARES
    return [
        Choice("random", share=shares[0]),
        Choice(weak, noise_std=0.5, share=shares[1]),
        Choice(weak, share=shares[2]),
        Choice(mid, deterministic=mid_deterministic, noise_std=0.3, share=shares[3]),
        Choice(medium, noise_std=0.3, share=shares[4]),
        Choice(medium, share=shares[5]),
    ]


REPLAY_LADDERS: dict[str, list[Choice]] = {
    "hopper": _ladder("a2c", "ppo_old", "sac"),
    "halfcheetah": _ladder("ppo_old", "a2c", "ppo"),
    "walker2d": _ladder("a2c", "ars", "ppo", mid_deterministic=True),
}

# D4RL v2 sizes (transitions): medium-replay is whatever the SAC run's buffer held.
DEFAULT_STEPS = {"random": 1_000_000, "medium": 1_000_000, "expert": 1_000_000, "medium-expert": 2_000_000}
REPLAY_STEPS = {"hopper": 402_000, "halfcheetah": 202_000, "walker2d": 302_000}

RECIPES = ("random", "medium", "expert", "medium-expert", "medium-replay", "sac-replay")

APPROXIMATION_NOTE = (
    "approximation of D4RL medium-replay: rollouts of fixed weaker-to-medium policies with Gaussian "
    "action noise, weakest first, instead of the replay buffer of one SAC run (use the sac-replay recipe "
    "for the faithful one)"
)


# The behaviour policies ship inside the package: DLR-RM/rl-trained-agents' SB3 agents (MIT, see
# behavior_policies/LICENSE) converted to numpy arrays, about 5 MB. So a fresh install collects every
# recipe without a download; pyproject.toml's package-data carries them into wheels.
PACKAGED_POLICY_DIR = Path(__file__).resolve().parent / "behavior_policies"


def default_policy_dir() -> Path:
    """$DEMA_POLICY_DIR when set (a user's own `{algo}-{Env}.npz` folder), else the shipped policies."""
    chosen = os.environ.get("DEMA_POLICY_DIR")
    return Path(chosen) if chosen else PACKAGED_POLICY_DIR


def _missing_policy_error(path: Path, policy_dir: Path) -> DataError:
    """Name the fix, which depends on whose folder lacks the file: the user's, or the package's."""
    if policy_dir.resolve() == PACKAGED_POLICY_DIR:
        return DataError(
            f"{path}: behaviour policy missing from the policies shipped with dema, so this install is "
            "incomplete; reinstall dema (pip install --force-reinstall, from its wheel or repository), "
            f"or pass --policy-dir DIR with a folder holding {path.name}"
        )
    return DataError(
        f"{path}: behaviour policy not found in {policy_dir} (given by --policy-dir or $DEMA_POLICY_DIR); "
        f"that folder needs {path.name}: add it there, or drop --policy-dir and unset DEMA_POLICY_DIR "
        "to use the policies shipped with dema"
    )


def resolve_policy(spec: EnvSpec, algo: str, policy_dir: Path | None = None) -> MlpPolicy | RandomPolicy:
    """`algo` ("sac") -> the policy `{policy_dir}/sac-Hopper.npz`; "random" -> uniform actions.

    `policy_dir` None means `default_policy_dir()`."""
    if algo == "random":
        return RandomPolicy(-np.ones(spec.act_dim), np.ones(spec.act_dim))
    policy_dir = Path(policy_dir) if policy_dir is not None else default_policy_dir()
    path = policy_dir / f"{algo}-{POLICY_ENV_NAMES[spec.name]}.npz"
    if not path.is_file():
        raise _missing_policy_error(path, policy_dir)
    return load_policy(path, obs_dim=spec.obs_dim)


def _stage(spec: EnvSpec, choice: Choice, steps: int, policy_dir: Path | None, policy=None) -> Stage:
    policy = policy if policy is not None else resolve_policy(spec, choice.algo, policy_dir)
    mode = "deterministic" if choice.deterministic else "stochastic"
    label = policy.name if choice.algo == "random" else f"{policy.name} {mode}"
    if choice.noise_std:
        label += f", action noise {choice.noise_std}"
    return Stage(label, policy, steps, choice.deterministic, choice.noise_std)


def build_stages(
    spec: EnvSpec,
    recipe: str,
    steps: int | None,
    policy_dir: Path | None = None,
    policy_path: Path | None = None,
) -> list[Stage]:
    """The stages of a recipe; `steps` overrides the default size, `policy_path` the level's policy,
    `policy_dir` (None: `default_policy_dir()`) the folder of the recipe's policies."""
    if spec.name not in LEVELS:
        raise ConfigError(f"no recipes for {spec.name!r}; recipes exist for {', '.join(LEVELS)}")
    if recipe not in RECIPES or recipe == "sac-replay":
        raise ConfigError(f"unknown recipe {recipe!r} here; choose one of {', '.join(RECIPES)}")
    total = steps if steps is not None else DEFAULT_STEPS.get(recipe, REPLAY_STEPS[spec.name])
    if total <= 0:
        raise ConfigError(f"--steps must be positive, got {total}")
    override = load_policy(policy_path, obs_dim=spec.obs_dim) if policy_path else None
    if override is not None and recipe not in ("medium", "expert"):
        raise ConfigError("--policy replaces the policy of the medium or expert recipe only")
    if recipe == "random":
        return [_stage(spec, Choice("random"), total, policy_dir)]
    if recipe in ("medium", "expert"):
        return [_stage(spec, LEVELS[spec.name][recipe], total, policy_dir, override)]
    if recipe == "medium-expert":
        half = total // 2
        return [
            _stage(spec, LEVELS[spec.name]["medium"], half, policy_dir),
            _stage(spec, LEVELS[spec.name]["expert"], total - half, policy_dir),
        ]
    ladder = REPLAY_LADDERS[spec.name]
    counts = [int(c.share * total) for c in ladder]
    counts[-1] += total - sum(counts)  # rounding goes to the last (medium) stage
    return [_stage(spec, c, n, policy_dir) for c, n in zip(ladder, counts) if n > 0]
