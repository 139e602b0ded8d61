"""The data of a training run, beyond what loading checks (dema.data.validate): the environment it is
scored in, whether a model can learn from its values, and what identifies it.

    spec = environment_of(dataset, "datasets/hopper-medium-v2.hdf5")   # recorded env spec or id, else the name
    spec, references = scoring_env(dataset, "mujoco/hopper/medium-v0")  # ... with the reference scores' source
    check_data_kind(dataset, spec)     # discrete <-> Atari game, frames of 84x84, actions in range
    check_learnable(dataset, data, spec, reward_scale=1000.0)          # DataError with the fix
    check_trajectory_batch(data, batch_size, source)   # RNN-like: a batch of whole episodes fits
    identity = dataset_identity("hopper-medium", dataset, data, spec)  # identity.json's "dataset"

`dataset` is the loaded `OfflineDataset`, `data` its `TrajectoryDataset` (returns-to-go, state
statistics, episodes). A refusal is a DataError naming the value and the fix; a warning (`log`)
says the consequence.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dema.data.episodes import returns_summary
from dema.data.recorded_env import check_normalisable, dataset_env, with_reference_scores
from dema.data.validate import check_against_env, fail, overflow_problem
from dema.envs import ATARI_FRAME, EnvSpec, dataset_name, env_spec
from dema.errors import ConfigError, DataError

# Returns-to-go (after dividing by data.reward_scale) beyond this make the return embedding's inputs
# so large that training diverges; MuJoCo's are below 15, Atari's (unscaled, as DT's Atari code) reach
# a few 1e4 (Qbert), so the bound is far above anything an environment here produces.
MAX_SCALED_RETURN = 1e6
# Continuous actions beyond this are outside the environments' [-1, 1] by more than noise: the
# policies' tanh head cannot produce them, so training would chase unreachable targets.
MAX_ACTION = 1.5


def scoring_env(dataset, requested: str) -> tuple[EnvSpec, str]:
    """The environment the run is scored in (`environment_of`), normalising with the dataset's own
    reference scores when it has them, and where they come from: "dataset" (a Minari dataset's own) or
    "table" (dema's; dema.data.recorded_env). An environment outside the table needs the dataset's."""
    spec, source = with_reference_scores(environment_of(dataset, requested), dataset)
    check_normalisable(spec, dataset)
    return spec, source


def environment_of(dataset, requested: str) -> EnvSpec:
    """The simulator of the dataset: the Gymnasium env spec it records (a Minari dataset's, checked
    against dema's table: dema.data.recorded_env), else its recorded env id, else the name it was asked
    for by."""
    recorded = dataset_env(dataset)
    if recorded is not None:
        return recorded
    for name in (dataset.env_name, dataset.metadata.get("env_name"), dataset.metadata.get("game"),
                 dataset_name(requested)):
        if name:
            try:
                return env_spec(name)
            except ConfigError:
                continue
    raise DataError(f"cannot tell which environment {requested!r} comes from; "
                    "name the file after it (hopper-..., halfcheetah-..., walker2d-..., maze2d-umaze-...; an Atari "
                    "replay folder after its game: .../Pong)")


def check_data_kind(dataset, spec: EnvSpec) -> None:
    """Refuse data of another kind than the environment's: discrete actions without an Atari game
    (or the reverse), frames that are not 84x84 uint8, action indices outside the game's minimal set."""
    source = dataset.source or "dataset"
    if spec.atari != dataset.discrete:
        what = "discrete actions (Atari)" if dataset.discrete else "continuous actions"
        raise fail(source, f"holds {what} but its environment is {spec.name}",
                   "name the folder after its Atari game (e.g. .../Pong) or the file after its MuJoCo dataset")
    if not spec.atari:
        return
    if dataset.obs_shape != ATARI_FRAME or dataset.observations.dtype.name != "uint8":
        raise fail(source, f"frames of shape {dataset.obs_shape} ({dataset.observations.dtype}); Atari frames "
                   f"must be single {ATARI_FRAME[0]}x{ATARI_FRAME[1]} uint8 frames, one per row",
                   "collect with `dema collect GAME ...` or use DQN-replay files (dopamine's preprocessing)")
    if dataset.n_actions != spec.act_dim:
        raise fail(source, f"{dataset.n_actions} actions but {spec.name} has {spec.act_dim} in its minimal "
                   "action set", "check the game the folder is named after")


def check_learnable(dataset, data, spec: EnvSpec, reward_scale: float, source: str = "", log=print) -> None:
    """What loading cannot know: the dataset against the environment training evaluates in, and
    values the model cannot learn from (returns-to-go after `reward_scale`, actions, states)."""
    named = dataset.env_name and _known_env(dataset.env_name)
    check_against_env(dataset, spec, "" if named else "named by the dataset's name")
    src = dataset.source or source
    scaled = float(np.abs(data._rtg).max()) if len(data._rtg) else 0.0
    if not math.isfinite(scaled) or scaled > MAX_SCALED_RETURN:
        biggest = float(np.abs(dataset.rewards).max())
        raise DataError(
            f"{src}: returns-to-go reach {scaled:.3g} after dividing by data.reward_scale {reward_scale:g} "
            f"(rewards up to {biggest:.3g}); the return embedding cannot take values this large and training would "
            f"diverge. Fix: repair the rewards, or raise --data.reward-scale so that returns-to-go stay below "
            f"{MAX_SCALED_RETURN:g}")
    if not dataset.discrete:
        biggest = float(np.abs(dataset.actions).max())
        if biggest > MAX_ACTION:
            raise DataError(
                f"{src}: actions reach {biggest:.3g}, but {spec.gym_id} acts in [-1, 1] and the policy's tanh head "
                "cannot output more than 1: the model would chase targets it cannot reach. Fix: rescale the "
                "actions to the environment's [-1, 1] (or clip them)")
        outside = np.abs(dataset.actions) > 1.0 + 1e-3
        if outside.any():
            log(f"warning: {src}: {int(outside.any(axis=-1).sum())} of {len(dataset)} actions lie outside [-1, 1] "
                f"(up to {biggest:.3g}); the tanh head learns them as the nearest bound")
    check_state_statistics(dataset, data, src)


def check_state_statistics(dataset, data, src: str) -> None:
    """Observations near 1e20 are finite, so loading takes them, but their std overflows float32: the
    normalised states would all be 0 (or NaN) and the model would train without seeing them."""
    if data.images:  # frames are scaled by a fixed 255
        return
    problem = overflow_problem(dataset.observations, data.state_mean, data.state_std)
    if problem:
        raise DataError(f"{src}: {problem}. Fix: rescale or repair the observations (the environments' own stay "
                        "within a few hundred), or drop the transitions that hold such values")


MAX_TRAJECTORY_BATCH_BYTES = 8 * 2**30  # stacked float32 frames of one batch of whole episodes


def check_trajectory_batch(data, batch_size: int, source: str) -> None:
    """RNN-like training draws batches of WHOLE episodes (the paper's RNN-like DeMa on Atari); with
    stacked frames the longest episode of a batch sets its size. Refuse a batch that cannot fit."""
    per_step = data.frame_stack * 84 * 84 * 4  # float32 stacked frames
    need = batch_size * data.max_length * per_step
    if data.images and need > MAX_TRAJECTORY_BATCH_BYTES:
        raise fail(source, f"RNN-like training takes whole episodes; the longest here has {data.max_length} steps, so a "
                   f"batch of {batch_size} holds up to {need / 2**30:.0f} GiB of stacked frames",
                   f"use --optim.batch-size {max(1, int(MAX_TRAJECTORY_BATCH_BYTES // (data.max_length * per_step)))} "
                   "(the paper used 1 on Frostbite) or a Transformer-like model (dema)")


def _known_env(name: str) -> bool:
    try:
        env_spec(name)
        return True
    except ConfigError:
        return False


def dataset_identity(requested: str, dataset, data, spec: EnvSpec) -> dict:
    """What identifies the data a run trains on: the name it was given, the file it was read from
    (and its size), a hash of the arrays (dema.data.dataset.OfflineDataset.content_sha256) and
    the transition and episode counts; plus its episode returns, raw and normalised, so that a
    report can put the scores next to the data's own (only the hash is compared on resume)."""
    source = Path(dataset.source) if dataset.source else None
    size = source.stat().st_size if source is not None and source.is_file() else None
    return {"dataset": requested, "path": str(source.resolve()) if source else None, "bytes": size,
            "format": dataset.format, "sha256": dataset.content_sha256(), "transitions": len(dataset),
            "episodes": len(data),
            "returns": returns_summary(dataset.episode_returns(), spec.normalize)}
