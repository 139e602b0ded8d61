"""D4RL hdf5: flat arrays `observations`, `actions`, `rewards`, `terminals`, `timeouts`.

Optional: `next_observations`; `infos/*` (per-step arrays such as qpos, goal); `metadata`, either
as attributes (root or the `metadata` group: what `dema collect` writes) or as small datasets under
`metadata/` (what D4RL's own files hold, e.g. `metadata/algorithm`, `metadata/policy/*` weights;
arrays larger than `_MAX_META_SIZE` elements, such as policy weights, are summarised by shape).

Old D4RL files (v0) have no `timeouts`: then `infos/TimeLimit.truncated` is used when present,
otherwise every step is read as "not a timeout" (with a warning; the validator then checks the
episodes against the environment's time limit when it is known).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from dema.data.dataset import OfflineDataset
from dema.data.validate import fail, require_keys, require_numeric, warn

REQUIRED = ("observations", "actions", "rewards", "terminals")
_MAX_META_SIZE = 4096


def load_d4rl(path: str | Path, infos: bool = True) -> OfflineDataset:
    src = str(path)
    try:
        with h5py.File(path, "r") as file:
            return _read(file, src, infos)
    except (OSError, KeyError, RuntimeError) as exc:  # h5py: not HDF5, truncated, or a corrupt object header
        raise fail(src, f"cannot be read as HDF5 ({_first_line(exc)}): the file is truncated or corrupt", "download or collect it again") from None


def _read(file: h5py.File, src: str, with_infos: bool) -> OfflineDataset:
    require_keys(src, list(file.keys()), REQUIRED)
    rewards = _flat(_array(file, "rewards", src), "rewards", src).astype(np.float32)
    n = len(rewards)
    observations = _array(file, "observations", src)
    actions = _array(file, "actions", src)
    if actions.ndim == 1 and actions.dtype.kind == "f":
        actions = actions[:, None]  # one continuous action dimension stored flat
    terminals = _flat(_array(file, "terminals", src), "terminals", src) != 0

    infos: dict[str, np.ndarray] = {}
    if "infos" in file and isinstance(file["infos"], h5py.Group):
        wanted = None if with_infos else {"TimeLimit.truncated"}
        _collect(file["infos"], "", infos, lambda a: a.ndim >= 1 and a.shape[0] == n, wanted)
    if "timeouts" in file:
        timeouts = _flat(_array(file, "timeouts", src), "timeouts", src) != 0
    elif "TimeLimit.truncated" in infos:
        warn(src, "no `timeouts` (an old D4RL file): using infos/TimeLimit.truncated instead")
        timeouts = infos["TimeLimit.truncated"].reshape(-1) != 0
    else:
        warn(src, "no `timeouts` key (an old D4RL file): only `terminals` split episodes")
        timeouts = np.zeros_like(terminals)

    next_observations = _array(file, "next_observations", src) if "next_observations" in file else None
    if observations.dtype != np.uint8:
        observations = observations.astype(np.float32)
        if next_observations is not None:
            next_observations = next_observations.astype(np.float32)
    if actions.dtype.kind == "f":
        actions = actions.astype(np.float32)
    elif actions.ndim == 1:
        actions = actions.astype(np.int64)

    return OfflineDataset(
        observations=observations,
        actions=actions,
        rewards=rewards,
        terminals=terminals,
        timeouts=timeouts,
        metadata=read_metadata(file),
        format="d4rl",
        source=src,
        next_observations=next_observations,
        infos=infos if with_infos else {},
    )


def read_metadata(file: h5py.File) -> dict:
    """Root attributes, `metadata` group attributes and small `metadata/*` datasets, flattened."""
    meta: dict = {key: _plain(value) for key, value in file.attrs.items()}
    group = file.get("metadata")
    if isinstance(group, h5py.Group):
        meta.update({key: _plain(value) for key, value in group.attrs.items()})
        _collect(group, "", meta, lambda a: True, None, summarise=True)
    return meta


def _collect(group: h5py.Group, prefix: str, out: dict, keep, wanted, summarise: bool = False) -> None:
    for key, item in group.items():
        name = f"{prefix}{key}"
        if isinstance(item, h5py.Group):
            _collect(item, name + "/", out, keep, wanted, summarise)
        elif wanted is None or name in wanted:
            if summarise and item.size > _MAX_META_SIZE:
                out[name] = f"<array {item.dtype} {tuple(item.shape)}>"
                continue
            value = item[()]
            if summarise:
                out[name] = _plain(value)
            elif keep(np.asarray(value)):
                out[name] = np.asarray(value)


def _array(file: h5py.File, key: str, src: str) -> np.ndarray:
    item = file[key]
    if not isinstance(item, h5py.Dataset):
        raise fail(src, f"`{key}` is a group, not an array", "store it as one dataset with one row per transition")
    return require_numeric(src, key, np.asarray(item[()]))


def _flat(value: np.ndarray, key: str, src: str) -> np.ndarray:
    """(N,) or (N, 1) -> (N,); anything else is an error."""
    if value.ndim == 2 and value.shape[1] == 1:
        return value[:, 0]
    if value.ndim != 1:
        raise fail(src, f"`{key}` has shape {value.shape}, expected one value per transition", f"store {key} with shape (N,)")
    return value


def _plain(value):
    """hdf5 attribute -> str / number / list (bytes decoded, JSON strings left as strings)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= _MAX_META_SIZE else f"<array {value.dtype} {value.shape}>"
    if isinstance(value, np.generic):
        return value.item()
    return value


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

