"""Checks every loaded dataset passes before anything trains on it: one clear error per problem.

Each error is a `DataError` whose one-line message names the file, the problem and the fix. The
checks, in order: not empty; all arrays of one length; numeric, finite values (no NaN/inf);
sizes that match the environment when one is known (from the caller or the file's metadata);
episodes no longer than the environment's time limit (longer ones mean the terminal/timeout flags
are missing); and the last episode finished.

An unfinished last episode (no terminal or timeout on the final transition: a buffer cut at an
arbitrary step, or a file whose flags were lost) is, by default, MARKED AS A TIMEOUT with a
warning: the data are real transitions and the only thing unknown is how the episode would have
continued, which is exactly what a timeout says. `strict=True` turns this into an error.

Known quirks of D4RL files are warned about, not refused:
- maze2d: its `timeouts` mark goal resets inside one long run of the controller, not resets of
  the environment, so "episodes" split there start mid-motion;
- a step flagged both terminal and timeout: kept as terminal (the timeout is cleared).
"""

from __future__ import annotations

import warnings

import numpy as np

from dema.data.dataset import OfflineDataset
from dema.envs import EnvSpec, env_spec
from dema.errors import ConfigError, DataError


class DataWarning(UserWarning):
    """A dataset quirk that was tolerated (and how), or a fix applied while loading."""


def fail(source: str, problem: str, fix: str) -> DataError:
    """The one error shape: `<file>: <problem>. Fix: <fix>` on a single line."""
    return DataError(f"{source or 'dataset'}: {problem}. Fix: {fix}".replace("\n", " "))


def warn(source: str, message: str) -> None:
    warnings.warn(f"{source or 'dataset'}: {message}", DataWarning, stacklevel=3)


def require_keys(source: str, present, required, where: str = "") -> None:
    """Raise a DataError naming the missing keys (and the ones that are there)."""
    missing = [key for key in required if key not in present]
    if missing:
        found = ", ".join(sorted(map(str, present))) or "nothing"
        raise fail(
            source,
            f"missing key{'s' if len(missing) > 1 else ''} {', '.join(missing)}{where} (found: {found})",
            "the file must hold " + ", ".join(required) + "; was it written by another tool or cut short?",
        )


def require_numeric(source: str, key: str, value: np.ndarray) -> np.ndarray:
    """Refuse an array of strings or objects before anything converts it (numpy would turn the
    text "0.5" into a number without a word)."""
    if value.dtype.kind not in "biuf":
        raise fail(source, f"`{key}` holds {value.dtype} values, not numbers",
                   f"store {key} as a numeric array (float32 for observations, actions and rewards)")
    return value


def resolve_env(dataset: OfflineDataset, env: str | EnvSpec | None) -> EnvSpec | None:
    """The environment to check against: the caller's, else the one the file names, if known."""
    if isinstance(env, EnvSpec):
        return env
    name = env or dataset.env_name
    if not name:
        return None
    try:
        return env_spec(name)
    except ConfigError:
        if env:  # the caller named it explicitly: an unknown name is their error
            raise
        return None


def validate(
    dataset: OfflineDataset, env: str | EnvSpec | None = None, strict: bool = False
) -> OfflineDataset:
    """Check `dataset` (in place) and return it; raise DataError with the fix on any problem."""
    src = dataset.source
    n = len(dataset)
    if n == 0:
        raise fail(src, "the dataset is empty (0 transitions)", "collect or download it again; the file holds no data")

    arrays = {
        "observations": dataset.observations,
        "actions": dataset.actions,
        "rewards": dataset.rewards,
        "terminals": dataset.terminals,
        "timeouts": dataset.timeouts,
    }
    if dataset.next_observations is not None:
        arrays["next_observations"] = dataset.next_observations
    lengths = {key: len(value) for key, value in arrays.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{key} {length}" for key, length in lengths.items())
        raise fail(src, f"arrays of different lengths ({listed})", "every array needs one row per transition; the file is inconsistent or was cut short")

    for key, value in arrays.items():
        if value.dtype.kind not in "biuf":
            raise fail(src, f"{key} has dtype {value.dtype}, not numbers", f"store {key} as a numeric array")
        if value.dtype.kind == "f":
            bad = ~np.isfinite(value.reshape(n, -1)).all(axis=1)
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise fail(
                    src,
                    f"{key} holds NaN or inf at {int(bad.sum())} transition(s), first at index {first}",
                    "drop or repair those transitions (a diverged policy or a broken simulator wrote them)",
                )

    if dataset.observations.ndim < 2:
        raise fail(src, f"observations have shape {dataset.observations.shape}, expected (N, features)", "store one observation vector per row")
    if dataset.actions.ndim == 1 and not dataset.discrete:
        raise fail(src, f"actions have shape {dataset.actions.shape} and dtype {dataset.actions.dtype}", "store continuous actions as (N, A) floats, discrete ones as (N,) integers")

    spec = resolve_env(dataset, env)
    if spec is not None:
        check_sizes(dataset, spec)

    both = dataset.terminals & dataset.timeouts
    if both.any():
        warn(src, f"{int(both.sum())} step(s) flagged both terminal and timeout; kept as terminal")
        dataset.timeouts = dataset.timeouts & ~dataset.terminals

    # D4RL's own maze2d files name their env "maze2d-*" (or nothing: then the file name says it);
    # datasets collected in Gymnasium's PointMaze record "PointMaze_*" and have real resets.
    if "maze2d" in (dataset.env_name or src).lower() and dataset.timeouts.any():
        warn(src, "maze2d timeouts mark goal resets inside one long controller run, not environment resets (a D4RL quirk); episodes split there start mid-motion")

    last = n - 1
    if not (dataset.terminals[last] or dataset.timeouts[last]):
        if strict:
            raise fail(src, "the last episode has no terminal or timeout at its end", "mark its last step as a timeout, or load without strict")
        if not (dataset.terminals.any() or dataset.timeouts.any()) and n > 1:
            warn(src, f"no terminal or timeout anywhere: all {n} transitions are read as one episode")
        warn(src, "the last episode has no terminal or timeout; marked as a timeout at its final step")
        dataset.timeouts = dataset.timeouts.copy()
        dataset.timeouts[last] = True

    if spec is not None:
        check_lengths(dataset, spec)
    warn_values(dataset)
    return dataset


def check_against_env(dataset: OfflineDataset, spec: EnvSpec, how: str = "") -> None:
    """Sizes and episode lengths against an environment the caller inferred (e.g. from the file's
    name, as `dema train` and `dema data` do); `how` says how, for the message."""
    check_sizes(dataset, spec, how)
    check_lengths(dataset, spec, how)


def check_sizes(dataset: OfflineDataset, spec: EnvSpec, how: str = "") -> None:
    """Observation and action sizes of a continuous-action dataset against the environment's."""
    if dataset.discrete:
        return
    src, env = dataset.source, f"{spec.gym_id}{f' ({how})' if how else ''}"
    fix = (f"use a dataset collected in {spec.gym_id}, or name the environment it was collected in"
           + (" (name the file after it, or record env_id in its metadata)" if how else ""))
    if dataset.obs_dim != spec.obs_dim:
        raise fail(src, f"observations have {dataset.obs_dim} features but {env} has {spec.obs_dim}", fix)
    if dataset.act_dim != spec.act_dim:
        raise fail(src, f"actions have {dataset.act_dim} dimensions but {env} has {spec.act_dim}", fix)


def check_lengths(dataset: OfflineDataset, spec: EnvSpec, how: str = "") -> None:
    """No episode longer than the environment's time limit (else its end flags are missing)."""
    bounds = dataset.episode_bounds()
    lengths = bounds[:, 1] - bounds[:, 0]
    too_long = np.flatnonzero(lengths > spec.max_episode_steps)
    if len(too_long):
        i = int(too_long[0])
        raise fail(
            dataset.source,
            f"episode {i} (transitions {bounds[i, 0]}..{bounds[i, 1] - 1}) has {lengths[i]} steps, "
            f"more than {spec.gym_id}'s limit of {spec.max_episode_steps}{f' ({how})' if how else ''}: "
            "terminal/timeout flags are missing",
            "write the terminals and timeouts (D4RL: `timeouts` true at each time-limit cut)",
        )


# Values beyond these are accepted by the file format but not by anything that learns from them.
HUGE_REWARD = 1e6  # per step; MuJoCo rewards are a few units, Atari's are clipped to +-1 by DQN agents
ACTION_BOUND = 1.0  # continuous actions: the environments' action spaces and the policies' tanh head


def state_statistics(observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per feature of (N, ...) vector observations, in float32 as training computes them
    (dema.data.trajectories); inf where they overflow (values near 1e20 square past float32's 3.4e38),
    without numpy's overflow warning: the callers say what it means."""
    obs = observations.reshape(len(observations), -1).astype(np.float32, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        return obs.mean(0), obs.std(0)


def overflow_problem(observations: np.ndarray, mean: np.ndarray, std: np.ndarray) -> str | None:
    """What is wrong with state statistics that are not finite (None when they are): every state
    normalised with them is 0 or NaN, so a model would learn nothing from the states."""
    bad = ~(np.isfinite(mean) & np.isfinite(std))
    if not bad.any():
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        biggest = float(np.abs(observations.reshape(len(observations), -1)[:, bad]).max())
    return (f"observations reach {biggest:.3g} in magnitude: their mean or standard deviation overflows float32 in "
            f"{int(bad.sum())} of {bad.size} features, so every normalised state would be 0 or NaN and a model "
            "would learn nothing from the states")


def warn_values(dataset: OfflineDataset) -> None:
    """Warnings (never refusals: the data may be meant for something else) for values that no
    environment here produces and that training refuses: huge rewards, actions outside [-1, 1],
    observations whose statistics overflow."""
    src = dataset.source
    if len(dataset) and dataset.observations.dtype.kind == "f":  # frames (uint8) are scaled by 255, not their std
        problem = overflow_problem(dataset.observations, *state_statistics(dataset.observations))
        if problem:
            warn(src, f"{problem}; `dema train` refuses them")
    if len(dataset):
        biggest = float(np.abs(dataset.rewards).max())
        if biggest > HUGE_REWARD:
            warn(src, f"rewards reach {biggest:.3g} in magnitude (MuJoCo's are a few units): returns-to-go this "
                      "large make sequence models diverge; `dema train` refuses them")
    if not dataset.discrete and dataset.actions.dtype.kind == "f" and len(dataset):
        outside = np.abs(dataset.actions) > ACTION_BOUND + 1e-3
        if outside.any():
            warn(src, f"{int(outside.any(axis=-1).sum())} of {len(dataset)} actions lie outside [-1, 1] (up to "
                      f"{float(np.abs(dataset.actions).max()):.3g}): the environments and the policies' tanh head "
                      "act in [-1, 1]")
