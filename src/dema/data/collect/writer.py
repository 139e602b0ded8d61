"""Write a D4RL-format hdf5 file atomically, with its metadata.

Layout: datasets `observations`, `next_observations`, `actions`, `rewards` (float32),
`terminals`, `timeouts` (bool), gzip-compressed with the shuffle filter; a group `metadata`
whose attributes describe the collection (strings, numbers, or JSON text for lists and dicts).

Atomicity: the file is written to a hidden temporary file in the same folder and moved into place
with `os.replace`, which is atomic on one file system, so an interrupted run never leaves a half
file under the final name. An existing file is never overwritten unless asked.
"""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata as importlib_metadata
from pathlib import Path

import h5py
import numpy as np

from dema.errors import DataError

KEYS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")
_VERSIONED = ("dema", "numpy", "gymnasium", "mujoco", "h5py", "torch", "gymnasium-robotics", "stable-baselines3")


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the data (the ones installed)."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            pass
    return versions


def check_writable(path: Path, overwrite: bool) -> None:
    """Refuse early (before minutes of collection) when the target exists or its folder is unusable."""
    if path.exists() and not overwrite:
        raise DataError(f"{path} already exists; pass --overwrite to replace it or choose another --out")
    if path.is_dir():
        raise DataError(f"{path} is a folder; --out must name a file such as {path / 'dataset.hdf5'}")


def write_hdf5(
    path: str | Path,
    data: dict[str, np.ndarray],
    meta: dict,
    overwrite: bool = False,
    next_observations: bool = True,
) -> Path:
    """Write data (the D4RL keys) and meta to path via a temporary file and an atomic rename.

    `next_observations=False` leaves that (optional, derivable) key out, which halves a small file.
    """
    path = Path(path)
    check_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            for key in KEYS if next_observations else KEYS[:-1]:
                arr = np.asarray(data[key])
                arr = arr.astype(bool) if key in ("terminals", "timeouts") else arr.astype(np.float32)
                f.create_dataset(key, data=arr, compression="gzip", compression_opts=4, shuffle=True)
            group = f.create_group("metadata")
            for key, value in meta.items():
                group.attrs[key] = value if isinstance(value, (str, int, float, np.number)) else json.dumps(value)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()  # an exception (or Ctrl-C) during the write: leave nothing behind
    return path
