"""Write transitions as a dopamine / DQN-replay run folder, which `dema.data.formats.dqn_replay` reads.

    OUT/<Game>/1/replay_logs/
        $store$_observation_ckpt.N.gz   (capacity, 84, 84) uint8, one frame per row
        $store$_action_ckpt.N.gz        (capacity,) int32, index into the minimal action set
        $store$_reward_ckpt.N.gz        (capacity,) float32, raw game reward
        $store$_terminal_ckpt.N.gz      (capacity,) uint8, 1 on the last step of an episode
        add_count_ckpt.N.gz             () int64, rows written (the buffer never wraps here)
        invalid_range_ckpt.N.gz         (0,) int64
    OUT/<Game>/dema_collect.json        how the data were made (ignored by the reader)

Row t is dopamine's `add(observation, action, reward, terminal)`: the frame the agent saw, the
action it took, the reward that followed and whether the episode ended there. Each checkpoint
holds at most `capacity` rows and ends its last episode with the data (a timeout for the reader
when the episode goes on in the next checkpoint). Files are written under temporary names and
renamed into place, so an interrupted collection leaves no half checkpoint under a final name.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np

from dema.errors import DataError

STORES = ("observation", "action", "reward", "terminal")


def run_folder(out: Path, game: str) -> Path:
    return Path(out) / game / "1" / "replay_logs"


def check_output(out: Path, game: str, overwrite: bool) -> Path:
    """The replay_logs folder to write; refuses an existing non-empty one unless `overwrite`."""
    logs = run_folder(out, game)
    if logs.exists() and any(logs.iterdir()):
        if not overwrite:
            raise DataError(f"{logs} already holds a replay; pass --overwrite to replace it or choose another --out")
        shutil.rmtree(logs)
    try:
        logs.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {logs} ({exc.strerror or exc}); choose an --out you can write to") from None
    return logs


def _save_gz(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    with gzip.open(tmp, "wb", compresslevel=1) as handle:  # frames compress ~30x even at level 1
        handle.write(buffer.getbuffer())
    os.replace(tmp, path)


class ReplayWriter:
    """Appends transitions and writes a checkpoint every `capacity` rows (and at `close`)."""

    def __init__(self, logs: Path, capacity: int = 100_000):
        self.logs, self.capacity = Path(logs), int(capacity)
        self.checkpoint = 0
        self._rows: dict[str, list] = {k: [] for k in STORES}
        self.written = 0

    def add(self, frame: np.ndarray, action: int, reward: float, terminal: bool) -> None:
        if frame.shape != (84, 84) or frame.dtype != np.uint8:
            raise ValueError(f"frames must be (84, 84) uint8, got {frame.shape} {frame.dtype}")
        for key, value in zip(STORES, (frame, action, reward, terminal)):
            self._rows[key].append(value)
        if len(self._rows["action"]) >= self.capacity:
            self.flush()

    def flush(self) -> None:
        n = len(self._rows["action"])
        if n == 0:
            return
        arrays = {
            "observation": np.stack(self._rows["observation"]).astype(np.uint8),
            "action": np.asarray(self._rows["action"], np.int32),
            "reward": np.asarray(self._rows["reward"], np.float32),
            "terminal": np.asarray(self._rows["terminal"], np.uint8),
        }
        ckpt = self.checkpoint
        for key, value in arrays.items():
            _save_gz(self.logs / f"$store$_{key}_ckpt.{ckpt}.gz", value)
        _save_gz(self.logs / f"invalid_range_ckpt.{ckpt}.gz", np.zeros(0, np.int64))
        _save_gz(self.logs / f"add_count_ckpt.{ckpt}.gz", np.array(n, np.int64))  # last: marks it complete
        self.checkpoint += 1
        self.written += n
        self._rows = {k: [] for k in STORES}

    def close(self, metadata: dict) -> None:
        self.flush()
        info = self.logs.parent.parent / "dema_collect.json"
        info.write_text(json.dumps(metadata, indent=2) + "\n")
