"""DQN-replay (Agarwal et al. 2020) / dopamine replay checkpoints for Atari.

A run's `replay_logs/` folder holds, per checkpoint N, gzip-compressed `.npy` files written by
dopamine's `OutOfGraphReplayBuffer.save`:

    $store$_observation_ckpt.N.gz   (capacity, 84, 84) uint8, ONE frame per row
    $store$_action_ckpt.N.gz        (capacity,) int32 index into the game's minimal action set
    $store$_reward_ckpt.N.gz        (capacity,) float32, as the agent stored it
    $store$_terminal_ckpt.N.gz      (capacity,) uint8, 1 on the last step of an episode
    add_count_ckpt.N.gz             () int: transitions ever added; the buffer is circular
    invalid_range_ckpt.N.gz         (k,) rows around the write cursor that are mid-overwrite

The buffer is read in time order: rows [0, add_count) while it is not full, else starting at the
cursor `add_count % capacity` (the oldest row) and wrapping around. Rows listed in invalid_range
are dropped (they sit at the two ends of that order). Each checkpoint's last row ends its
episode with a timeout, and its first episode may start mid-game (its beginning was
overwritten). Frames are kept as single uint8 frames; stacking is done by `TrajectoryDataset`
(`frame_stack=4`). `max_transitions` reads only what it needs, streaming rows out of the gzip,
because one full checkpoint of frames is 7 GB: it keeps whole episodes up to the budget (the
DT Atari code likewise samples complete trajectories from each buffer).
"""

from __future__ import annotations

import gzip
import re
import warnings
import zlib
from pathlib import Path

import numpy as np

from dema.data.dataset import OfflineDataset
from dema.data.validate import DataWarning, fail
from dema.envs import ATARI_ACTIONS

_STORES = ("observation", "action", "reward", "terminal")
_READ_ERRORS = (OSError, EOFError, ValueError, zlib.error)
MAX_BYTES = 16 * 2**30  # frames read without an explicit max_transitions
CHUNK_ROWS = 8192  # frames read from a gzip stream at a time (58 MB of 84x84 frames)


def checkpoints_in(folder: Path) -> list[int]:
    found = (re.fullmatch(r"\$store\$_observation_ckpt\.(\d+)\.gz", p.name) for p in folder.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def replay_logs(path: Path) -> Path | None:
    """The replay_logs folder of `path`: itself, its replay_logs/, or a game folder's run
    (`<Game>/1/replay_logs`, the run DT reads; else the only run there); None when there is none."""
    candidates = [path, path / "replay_logs", path / "1" / "replay_logs", *sorted(path.glob("*/replay_logs"))]
    for logs in candidates:
        if logs.is_dir() and any(logs.glob("$store$_observation_ckpt.*.gz")):
            return logs
    return None


def load_dqn_replay(
    folder: str | Path,
    checkpoints: list[int] | None = None,
    max_transitions: int | None = None,
    n_actions: int | None = None,
    budgets: dict[int, int] | None = None,
) -> OfflineDataset:
    """`budgets` (checkpoint -> rows): read only the whole episodes within the first rows of each
    checkpoint (in time order); what `dema.data.formats.dqn_replay_sampling` plans."""
    folder = Path(folder)
    checkpoints = checkpoints_in(folder) if checkpoints is None else list(checkpoints)
    if not checkpoints:
        raise fail(str(folder), "no DQN-replay checkpoints ($store$_observation_ckpt.N.gz)", "name a run's replay_logs folder")
    if max_transitions is None and budgets is None:
        _check_memory(folder, checkpoints)
    parts = []
    budget = max_transitions
    for ckpt in checkpoints:
        if budget is not None and budget <= 0:
            break
        if budgets is not None:
            if budgets.get(ckpt, 0) > 0:
                part = _read_checkpoint(folder, ckpt, budgets[ckpt])
                part.pop("cut")
                parts.append(part)
            continue
        part = _read_checkpoint(folder, ckpt, budget)
        parts.append(part)
        if part.pop("cut"):
            break  # the budget ended inside this checkpoint
        budget = None if budget is None else budget - len(part["reward"])

    game = next((p for p in reversed(folder.resolve().parts) if p in ATARI_ACTIONS), None)
    if not parts:
        raise fail(str(folder), "no transitions selected from the checkpoints", "read more transitions")
    read = [c for c in checkpoints if budgets.get(c, 0) > 0] if budgets is not None else checkpoints[: len(parts)]
    metadata = {"game": game or "", "checkpoints": read, "frame_stack_hint": 4}
    actions = np.concatenate([p["action"] for p in parts]).astype(np.int64)
    if n_actions is None and game:
        n_actions = ATARI_ACTIONS[game]
    if n_actions is None:
        n_actions = int(actions.max()) + 1 if len(actions) else 0
        warnings.warn(f"{folder}: unknown game, so the number of actions is taken as max index + 1 = {n_actions}; pass n_actions to be exact", DataWarning, stacklevel=2)
    if len(actions) and actions.max() >= n_actions:
        raise fail(str(folder), f"action index {int(actions.max())} but the game has {n_actions} actions", "pass the right n_actions (dopamine uses the minimal action set)")
    metadata["n_actions"] = int(n_actions)
    return OfflineDataset(
        observations=_read_frames(parts),
        actions=actions,
        rewards=np.concatenate([p["reward"] for p in parts]).astype(np.float32),
        terminals=np.concatenate([p["terminal"] for p in parts]) != 0,
        timeouts=np.concatenate([p["timeout"] for p in parts]),
        metadata=metadata,
        format="dqn-replay",
        source=str(folder),
    )


def _check_memory(folder: Path, checkpoints: list[int]) -> None:
    """Refuse a full read that cannot fit (50 checkpoints of 1M frames are ~350 GB)."""
    total = 0
    for ckpt in checkpoints:
        rows = int(_load_small(folder / f"add_count_ckpt.{ckpt}.gz")) if (folder / f"add_count_ckpt.{ckpt}.gz").exists() else 0
        path = folder / f"$store$_observation_ckpt.{ckpt}.gz"
        try:
            with gzip.open(path, "rb") as handle:
                shape, _, dtype = _read_header(handle)
        except _READ_ERRORS as exc:
            raise fail(str(path), f"cannot be read as a gzip'd .npy ({type(exc).__name__}: {exc}): truncated or corrupt", "copy the checkpoint again") from None
        total += min(rows, shape[0]) * int(np.prod(shape[1:])) * dtype.itemsize
    if total > MAX_BYTES:
        raise fail(
            str(folder),
            f"reading all {len(checkpoints)} checkpoint(s) needs {total / 2**30:.1f} GiB of frames (limit {MAX_BYTES / 2**30:.0f} GiB)",
            "pass max_transitions (`dema data --max-transitions`; DT used 500,000 = 1%), or name one $store$_observation_ckpt.N.gz file",
        )


def _read_header(handle) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(handle)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read(handle)
    return shape, fortran, dtype


def _read_checkpoint(folder: Path, ckpt: int, budget: int | None) -> dict[str, np.ndarray]:
    def path(name: str) -> Path:
        p = folder / f"{name}_ckpt.{ckpt}.gz"
        if not p.exists():
            raise fail(str(p), "missing: a DQN-replay checkpoint needs all of $store$_{observation,action,reward,terminal} and add_count", "copy the whole replay_logs folder")
        return p

    add_count = int(_load_small(path("add_count")))
    small = {name: _load_small(path(f"$store$_{name}")) for name in _STORES[1:]}
    capacity = len(small["action"])
    if len(small["reward"]) != capacity or len(small["terminal"]) != capacity:
        raise fail(
            str(folder),
            f"checkpoint {ckpt} stores of different sizes (action {capacity}, reward {len(small['reward'])}, terminal {len(small['terminal'])})",
            "the files come from different runs or were cut short; copy the whole replay_logs folder again",
        )
    invalid_path = folder / f"invalid_range_ckpt.{ckpt}.gz"
    invalid = _load_small(invalid_path).astype(np.int64).reshape(-1) if invalid_path.exists() else np.zeros(0, np.int64)

    order = time_order(add_count, capacity, invalid)
    terminal = small["terminal"][order] != 0
    cut = budget is not None and budget < len(order)
    if cut:
        ends = np.flatnonzero(terminal[:budget]) + 1
        keep = int(ends[-1]) if len(ends) else budget  # whole episodes when at least one fits
        order, terminal = order[:keep], terminal[:keep]
    if len(order) == 0:
        raise fail(str(path("$store$_observation")), "the checkpoint holds no valid transitions (add_count 0)", "use another checkpoint")

    timeout = np.zeros(len(order), bool)
    timeout[-1] = not terminal[-1]  # the data stop here; the episode did not
    return {
        "observation": (path("$store$_observation"), order),  # read by _read_frames, into one array
        "action": small["action"][order],
        "reward": small["reward"][order],
        "terminal": terminal,
        "timeout": timeout,
        "cut": cut,
    }


def time_order(add_count: int, capacity: int, invalid: np.ndarray) -> np.ndarray:
    """Rows in time order: the oldest first (at the cursor once the circular buffer has wrapped),
    without the rows of invalid_range."""
    if add_count <= capacity:
        order = np.arange(add_count)
    else:
        order = (np.arange(capacity) + add_count % capacity) % capacity
    return order[~np.isin(order, invalid)]


def _load_small(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as handle:
            return np.load(handle, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise fail(str(path), f"cannot be read as a gzip'd .npy ({type(exc).__name__}: {exc}): truncated or corrupt", "copy the checkpoint again") from None


def _read_frames(parts: list[dict]) -> np.ndarray:
    """The frames of every part, streamed straight into one preallocated array: the peak memory is
    the frames kept plus one contiguous run of one checkpoint (no concatenated copy)."""
    total = sum(len(part["reward"]) for part in parts)
    out = None
    at = 0
    for part in parts:
        path, order = part["observation"]
        for piece in _read_rows(path, order, pieces=True):
            if out is None:
                out = np.empty((total, *piece.shape[1:]), dtype=piece.dtype)
            elif piece.shape[1:] != out.shape[1:] or piece.dtype != out.dtype:
                raise fail(str(path), f"frames of shape {piece.shape[1:]} ({piece.dtype}) where the earlier checkpoints "
                           f"hold {out.shape[1:]} ({out.dtype})", "use checkpoints of one run")
            out[at: at + len(piece)] = piece
            at += len(piece)
    return out


def _read_rows(path: Path, order: np.ndarray, pieces: bool = False):
    """Rows `order` of a gzip'd .npy, reading contiguous runs by streaming (no full load); with
    `pieces`, a generator of the runs' arrays instead of their concatenation."""
    if pieces:
        return _read_runs(path, order)
    return np.concatenate(list(_read_runs(path, order)))


def _read_runs(path: Path, order: np.ndarray):
    runs = np.split(order, np.flatnonzero(np.diff(order) != 1) + 1)  # contiguous pieces, in order
    try:
        for run in runs:
            with gzip.open(path, "rb") as handle:
                shape, fortran, dtype = _read_header(handle)
                if fortran or len(shape) < 2 or int(order.max()) >= shape[0]:
                    raise ValueError(f"unexpected array layout {shape}, fortran={fortran}")
                row_bytes = int(np.prod(shape[1:])) * dtype.itemsize
                handle.seek(handle.tell() + int(run[0]) * row_bytes)
                for start in range(0, len(run), CHUNK_ROWS):  # chunks: the peak is one chunk, not one run
                    rows = min(CHUNK_ROWS, len(run) - start)
                    data = handle.read(rows * row_bytes)
                    if len(data) != rows * row_bytes:
                        raise EOFError(f"{len(data)} of {rows * row_bytes} bytes")
                    yield np.frombuffer(data, dtype=dtype).reshape((rows, *shape[1:]))
    except _READ_ERRORS as exc:
        raise fail(str(path), f"cannot be read as a gzip'd .npy ({type(exc).__name__}: {exc}): truncated or corrupt", "copy the checkpoint again") from None
