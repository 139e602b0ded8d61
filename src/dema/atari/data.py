"""The data `dema train` reads, with the Atari checks: DQN-replay folders sampled as DT does, frames checked.

    dataset = load_training_data(".../Pong", max_transitions=500_000, seed=0)   # DT's 1%
    check_dataset(dataset, spec)     # discrete <-> Atari game, frames of 84x84, actions in range

Frames are kept as single uint8 frames and stacked on the fly by `TrajectoryDataset(frame_stack=4)`
(`_frames`: a window's F x K frames are gathered by index when a batch is drawn), so a game's
data cost one byte per pixel per transition: 7,056 bytes, 3.5 GB for 500k transitions.
"""

from __future__ import annotations

from pathlib import Path

from dema.atari.dt_sample import sample_dqn_replay
from dema.data.dataset import OfflineDataset
from dema.data.formats import dqn_replay
from dema.data.validate import fail
from dema.envs import ATARI_FRAME, EnvSpec


def is_dqn_replay(path: str | Path) -> bool:
    p = Path(path).expanduser()
    return p.is_dir() and dqn_replay.replay_logs(p) is not None


def load_training_data(path_or_id: str, max_transitions: int = 0, seed: int = 0) -> OfflineDataset:
    """What `dema train` reads: a DQN-replay folder with `max_transitions` is sampled as DT does;
    everything else (and max_transitions 0) goes through `dema.data.load.load_dataset`."""
    from dema.data.load import load_dataset
    from dema.data.validate import validate

    if max_transitions and is_dqn_replay(path_or_id):
        return validate(sample_dqn_replay(path_or_id, max_transitions, seed=seed))
    return load_dataset(path_or_id, max_transitions=max_transitions or None)


def check_dataset(dataset: OfflineDataset, spec: EnvSpec) -> None:
    """Refuse data that do not fit the environment: discrete actions without an Atari game (or the
    reverse), frames that are not 84x84 uint8, action indices outside the game's minimal set."""
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
