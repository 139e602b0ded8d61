"""Write a D4RL-format hdf5 file atomically, with its metadata.

Layout: datasets `observations`, `next_observations`, `actions`, `rewards` (float32),
`terminals`, `timeouts` (bool), gzip-compressed with the shuffle filter; a group `metadata`
whose attributes describe the collection (strings, numbers, or JSON text for lists and dicts).

Atomicity (dema.files.atomic_write): the file is written to a hidden temporary file in the same
folder and moved into place with `os.replace`, which is atomic on one file system, so an
interrupted run never leaves a half file under the final name. An existing file is never
overwritten unless asked.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from dema.errors import DataError
from dema.files import atomic_write

KEYS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")


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

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            for key in KEYS if next_observations else KEYS[:-1]:
                arr = np.asarray(data[key])
                arr = arr.astype(bool) if key in ("terminals", "timeouts") else arr.astype(np.float32)
                f.create_dataset(key, data=arr, compression="gzip", compression_opts=4, shuffle=True)
            group = f.create_group("metadata")
            for key, value in meta.items():
                group.attrs[key] = value if isinstance(value, (str, int, float, np.number)) else json.dumps(value)

    atomic_write(path, write)  # an exception (or Ctrl-C) during the write leaves nothing behind
    return path
