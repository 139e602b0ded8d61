"""Decision Transformer's 1% sampling of DQN-replay (its `create_dataset.py`): the Atari training data.

DT builds a game's dataset from run 1 of DQN-replay (`<Game>/1/replay_logs`, 50 checkpoints of 1M
transitions) until it holds `num_steps` (500,000: 1%) transitions: it draws a checkpoint uniformly at
random, reads `trajectories_per_buffer + 1` (11) whole episodes onward from where it stopped reading
that checkpoint last time, and repeats. Episodes that would run past the end of what it reads of a
checkpoint are dropped. Here the plan is made on the small arrays (terminal flags) first and the
frames are then read once per checkpoint, streaming (`dema.data.formats.dqn_replay`), so only the
sampled frames are ever held.

Differences, on purpose: rows are read in time order (DT reads storage rows 0.. of the circular
buffer, whose oldest row is at the write cursor once the buffer has wrapped); a checkpoint whose
rows are used up is no longer drawn (DT's loop would keep drawing it); `rows_per_buffer` (DT's
replay_capacity, 100,000) bounds what is read of each checkpoint as in DT.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dema.data.dataset import OfflineDataset
from dema.data.formats import dqn_replay
from dema.data.validate import fail


def plan(logs: Path, num_steps: int, trajectories_per_buffer: int = 10, rows_per_buffer: int = 100_000,
         seed: int = 0) -> dict[int, int]:
    """checkpoint -> rows to read from its start (time order), whole episodes, ~num_steps in all."""
    checkpoints = dqn_replay.checkpoints_in(logs)
    if not checkpoints:
        raise fail(str(logs), "no DQN-replay checkpoints ($store$_observation_ckpt.N.gz)", "name a game's replay folder")
    ends: dict[int, np.ndarray] = {}
    for ckpt in checkpoints:
        add_count = int(dqn_replay._load_small(_path(logs, "add_count", ckpt)))
        terminal = dqn_replay._load_small(_path(logs, "$store$_terminal", ckpt))
        invalid_path = logs / f"invalid_range_ckpt.{ckpt}.gz"
        invalid = dqn_replay._load_small(invalid_path).astype(np.int64).reshape(-1) if invalid_path.exists() else np.zeros(0, np.int64)
        order = dqn_replay.time_order(add_count, len(terminal), invalid)[:rows_per_buffer]
        ends[ckpt] = np.flatnonzero(terminal[order] != 0) + 1  # rows read after each finished episode
    rng = np.random.default_rng(seed)
    used = {c: 0 for c in checkpoints}  # episodes taken from each checkpoint
    total, open_ = 0, [c for c in checkpoints if len(ends[c])]
    while total < num_steps and open_:
        ckpt = open_[int(rng.integers(len(open_)))]
        have = used[ckpt]
        want = have + trajectories_per_buffer + 1
        if want > len(ends[ckpt]):  # the draw would run past the rows read: dropped, the checkpoint is spent
            open_.remove(ckpt)
            continue
        before = ends[ckpt][have - 1] if have else 0
        total += int(ends[ckpt][want - 1] - before)
        used[ckpt] = want
    budgets = {c: int(ends[c][n - 1]) for c, n in used.items() if n}
    if not budgets:
        raise fail(str(logs), f"no checkpoint holds {trajectories_per_buffer + 1} whole episodes",
                   "read the folder without sampling (--data.max-transitions 0)")
    return budgets


def _path(logs: Path, name: str, ckpt: int) -> Path:
    path = logs / f"{name}_ckpt.{ckpt}.gz"
    if not path.exists():
        raise fail(str(path), "missing: a DQN-replay checkpoint needs all of $store$_{observation,action,reward,terminal} "
                   "and add_count", "copy the whole replay_logs folder")
    return path


def sample_dqn_replay(path: str | Path, num_steps: int = 500_000, trajectories_per_buffer: int = 10,
                      rows_per_buffer: int = 100_000, seed: int = 0) -> OfflineDataset:
    """DT's dataset of a DQN-replay game folder (`.../Pong`, `.../Pong/1/replay_logs`)."""
    logs = dqn_replay.replay_logs(Path(path))
    if logs is None:
        raise fail(str(path), "no DQN-replay checkpoints here, in replay_logs/ or in <run>/replay_logs/",
                   "name a game's DQN-replay folder, e.g. .../Pong holding 1/replay_logs")
    budgets = plan(logs, num_steps, trajectories_per_buffer, rows_per_buffer, seed)
    dataset = dqn_replay.load_dqn_replay(logs, budgets=budgets)
    dataset.metadata.update({"sampling": "dt-create-dataset", "num_steps": num_steps,
                             "trajectories_per_buffer": trajectories_per_buffer, "rows_per_buffer": rows_per_buffer,
                             "sampling_seed": seed, "rows_per_checkpoint": budgets})
    return dataset
