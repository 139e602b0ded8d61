"""The environment a dataset records, checked against dema's table, and the reference scores its
returns are normalised with.

A Minari dataset records the Gymnasium env spec it was collected in (`env_spec`, and `eval_env_spec`
when its authors name another environment to evaluate in): an id with its version, the time limit,
the arguments. That spec is the environment the dataset is scored in (`dema train` calls
`dataset_env`; reading a dataset only checks its sizes, dema.data.validate):

- an environment of dema's table (`dema.envs.ENVS`, by the id without its version) must be the
  table's own: the same version (a Hopper-v4 dataset is not scored in Hopper-v5: other physics,
  returns that do not compare), the same time limit, no arguments besides the defaults, and spaces
  of the table's sizes; any disagreement is a one-line DataError;
- an environment the table does not hold (Ant-v5) is made from the spec, and must start, have a
  flat Box observation and a Box action of the dataset's sizes; its reference scores can only come
  from the dataset (training refuses one that has none: `check_normalisable`).

Scores are normalised with the dataset's own reference scores (Minari's `ref_min_score` and
`ref_max_score` metadata) when it has them, else with the table's; `reference_scores` says which.
A D4RL file records no env spec and keeps the table's scores (dema's own files copy them).
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from dema.data.dataset import OfflineDataset
from dema.data.validate import fail
from dema.envs import ENVS, EnvSpec, env_by_gym_id

# Arguments of a recorded spec that do not change the dynamics or the rewards.
_HARMLESS_KWARGS = {"render_mode", "width", "height", "camera_id", "camera_name", "default_camera_config"}

TABLE = "table"  # reference scores from dema's table (dema.envs.ENVS)
DATASET = "dataset"  # reference scores the dataset carries (Minari's ref_min_score / ref_max_score)


def recorded_spec(dataset: OfflineDataset) -> dict | None:
    """The Gymnasium env spec the dataset records as a dict (id, max_episode_steps, kwargs, ...): its
    evaluation environment's when it names one, else the one it was collected in; None when none."""
    for key in ("eval_env_spec", "env_spec"):
        text = dataset.metadata.get(key)
        if not text:
            continue
        try:
            spec = json.loads(text) if isinstance(text, str) else dict(text)
        except (ValueError, TypeError):
            raise fail(dataset.source, f"its `{key}` metadata is not a Gymnasium env spec in JSON",
                       "restore the dataset's metadata.json (minari writes it)") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
            raise fail(dataset.source, f"its `{key}` metadata names no environment id",
                       "restore the dataset's metadata.json (minari writes it)")
        return spec
    return None


def dataset_env(dataset: OfflineDataset, make: bool = True) -> EnvSpec | None:
    """The environment the dataset is scored in, from its recorded env spec (see the module docstring);
    None when it records none. A DataError names any disagreement. An environment outside the table is
    made only with `make` (training needs it; reading a dataset does not, nor its simulator)."""
    recorded = recorded_spec(dataset)
    if recorded is None:
        return None
    known = env_by_gym_id(recorded["id"])
    if known is not None:
        _check_against_table(dataset, recorded, known)
        return known
    return _made_env(dataset, recorded) if make else None


def _ids(spec: EnvSpec) -> set[str]:
    return {i.lower() for i in (spec.gym_id.split(":")[-1], *spec.aliases)}


def _check_against_table(dataset: OfflineDataset, recorded: dict, spec: EnvSpec) -> None:
    src, gym_id, table_id = dataset.source, recorded["id"], spec.gym_id.split(":")[-1]
    if gym_id.lower() not in _ids(spec):
        raise fail(src, f"recorded in {gym_id}, but dema scores {spec.name} in {table_id} (another version of the "
                        "environment: its returns do not compare)",
                   f"use a dataset collected in {table_id} (e.g. `dema collect {spec.name} medium --format minari`)")
    limit = recorded.get("max_episode_steps")
    if limit is not None and int(limit) != spec.max_episode_steps:
        raise fail(src, f"recorded with a time limit of {limit} steps, but dema scores {table_id} episodes of up to "
                        f"{spec.max_episode_steps}",
                   f"use a dataset collected with {table_id}'s own limit")
    _check_kwargs(dataset, recorded)
    _check_spaces(dataset, spec)


def _check_kwargs(dataset: OfflineDataset, recorded: dict) -> None:
    kwargs = {k: v for k, v in (recorded.get("kwargs") or {}).items() if k not in _HARMLESS_KWARGS}
    if kwargs:
        shown = ", ".join(f"{k}={v!r}" for k, v in sorted(kwargs.items()))
        raise fail(dataset.source, f"recorded in {recorded['id']} made with arguments ({shown}) that dema's evaluation "
                                   "does not pass: its scores would come from another task",
                   f"use a dataset collected in {recorded['id']} with its default arguments")


def _check_spaces(dataset: OfflineDataset, spec: EnvSpec) -> None:
    """The recorded spaces' sizes against the environment's (the arrays' are checked by validate too)."""
    if spec.atari:
        return
    table_id = spec.gym_id.split(":")[-1]
    for what, size in (("observation", spec.obs_dim), ("action", spec.act_dim)):
        shape = dataset.metadata.get(f"{what}_space_shape")  # dema.data.formats.minari records it
        if shape is not None and math.prod(shape) != size:
            raise fail(dataset.source, f"its {what} space has shape {tuple(shape)}, but {table_id}'s {what}s have "
                                       f"{size} features", f"use a dataset collected in {table_id} itself")


def _made_env(dataset: OfflineDataset, recorded: dict) -> EnvSpec:
    """An environment outside the table, made from the recorded spec and checked against the data."""
    import gymnasium as gym

    src, gym_id = dataset.source, recorded["id"]
    _check_kwargs(dataset, recorded)
    # gymnasium's "module:id" form imports the module that registers the environment (its entry
    # point's package, e.g. gymnasium_robotics), so the evaluator's gym.make(gym_id) finds it too
    module = str(recorded.get("entry_point") or "").split(":")[0]
    candidates = [gym_id] + ([f"{module}:{gym_id}"] if module and ":" not in gym_id else [])
    for i, candidate in enumerate(candidates):
        try:
            env = gym.make(candidate)
            gym_id = candidate
            break
        except Exception as exc:  # gymnasium's NameNotFound, DependencyNotInstalled, a broken entry point
            if i + 1 < len(candidates):
                continue
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise fail(src, f"recorded in {recorded['id']}, which cannot be made here ({type(exc).__name__}: {reason})",
                       f"install the package that registers {recorded['id']}, or use a dataset of an environment dema "
                       f"knows ({', '.join(s.gym_id.split(':')[-1] for s in ENVS.values() if not s.atari)})") from None
    try:
        obs_space, act_space = env.observation_space, env.action_space
        limit = recorded.get("max_episode_steps") or (env.spec.max_episode_steps if env.spec else None)
    finally:
        env.close()
    if not isinstance(obs_space, gym.spaces.Box) or not isinstance(act_space, gym.spaces.Box):
        raise fail(src, f"{gym_id} has a {type(obs_space).__name__} observation and a {type(act_space).__name__} action "
                        "space; dema acts on flat Box observations with Box actions in environments outside its table",
                   "use a dataset of an environment with vector observations and continuous actions")
    if not (np.all(act_space.low == -1.0) and np.all(act_space.high == 1.0)):
        raise fail(src, f"{gym_id} acts in [{np.min(act_space.low):g}, {np.max(act_space.high):g}], and dema's policies in "
                        "[-1, 1] (a tanh head; every environment of dema's table acts there)",
                   "use a dataset of an environment whose actions lie in [-1, 1]")
    for what, shape, size in (("observation", obs_space.shape, dataset.obs_dim),
                              ("action", act_space.shape, dataset.act_dim)):
        if math.prod(shape) != size:
            raise fail(src, f"its {what}s have {size} features, but {gym_id}'s {what} space has shape {tuple(shape)}",
                       f"use a dataset collected in {gym_id} itself")
    if not limit:
        raise fail(src, f"{gym_id} has no time limit, and the dataset records none",
                   "use a dataset whose env spec records max_episode_steps")
    # no table entry to take reference scores from: the dataset's own, else none (NaN; training refuses
    # it, `check_normalisable`); targets: the expert reference's return and half of it, as for maze2d
    low, high = own_reference_scores(dataset) or (math.nan, math.nan)
    name = gym_id.split(":")[-1].split("/")[-1].rsplit("-v", 1)[0].lower()
    return EnvSpec(name, gym_id, math.prod(obs_space.shape), math.prod(act_space.shape), int(limit), low, high,
                   (high, high / 2) if math.isfinite(high) else (), aliases=(gym_id,))


def check_normalisable(spec: EnvSpec, dataset: OfflineDataset) -> None:
    """Scores need reference scores: an environment outside the table has only the dataset's."""
    if not (math.isfinite(spec.ref_min_score) and math.isfinite(spec.ref_max_score)):
        raise fail(dataset.source, f"{spec.gym_id} is not in dema's table and the dataset records no reference scores "
                                   "(ref_min_score, ref_max_score), so its returns cannot be normalised",
                   "add them to the dataset's metadata (minari: dataset.storage.update_metadata({...})), or use a "
                   f"dataset of an environment dema knows ({', '.join(n for n, s in ENVS.items() if not s.atari)})")


def own_reference_scores(dataset: OfflineDataset) -> tuple[float, float] | None:
    """(ref_min_score, ref_max_score) a Minari dataset carries, when it has both as distinct numbers."""
    if dataset.format != "minari":
        return None  # D4RL files: dema's own copy the table's; the original files carry none
    try:
        low, high = float(dataset.metadata["ref_min_score"]), float(dataset.metadata["ref_max_score"])
    except (KeyError, TypeError, ValueError):
        return None
    return (low, high) if math.isfinite(low) and math.isfinite(high) and high != low else None


def with_reference_scores(spec: EnvSpec, dataset: OfflineDataset) -> tuple[EnvSpec, str]:
    """The environment normalising with the dataset's own reference scores when it has them (source
    "dataset"), else the table's (source "table")."""
    refs = own_reference_scores(dataset)
    if refs is None:
        return spec, TABLE
    return dataclasses.replace(spec, ref_min_score=refs[0], ref_max_score=refs[1]), DATASET


def reference_note(source: str) -> str:
    """The source of a run's reference scores in words, for logs and reports."""
    return ("the dataset's own reference scores (its ref_min_score / ref_max_score)" if source == DATASET
            else "dema's table's reference scores (dema.envs: D4RL's for MuJoCo, computed here for maze2d, DT's for Atari)")
