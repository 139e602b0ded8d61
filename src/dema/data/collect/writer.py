"""Write a D4RL-format hdf5 file safely, with its metadata: all at once, or part by part as collected.

Layout: datasets `observations`, `next_observations`, `actions`, `rewards` (float32),
`terminals`, `timeouts` (bool), gzip-compressed with the shuffle filter; a group `metadata`
whose attributes describe the collection (strings, numbers, or JSON text for lists and dicts).

Safety:
- `check_writable` runs before any collection: the output must not exist (unless asked), its
  folder must be creatable and writable (a probe file is written and removed there).
- `write_hdf5` (all at once) writes through dema.files.atomic_write: a hidden temporary file in
  the same folder, moved into place with `os.replace`, so an interrupted run never leaves a half
  file under the final name.
- `PartialWriter` (part by part, `dema collect`'s MuJoCo recipes): the collection goes to
  `<name>.partial.hdf5` beside the output, each part (a recipe's stage) appended and flushed as
  soon as it is collected; the finished file gets its metadata and is renamed onto the output. If
  a write fails (a full disk) or the collection is interrupted, the parts written so far stay in the
  partial file, a valid D4RL file whose every episode ends (`dema data` reads it), and the error
  says so.
- Before each write the free space is checked against the data's uncompressed size and a margin
  that grows with it (`space_needed`), so a full disk is a clear error rather than a failure (or a
  crash) inside the HDF5 library.
An existing file is never overwritten unless asked.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np

from dema.errors import DataError
from dema.files import atomic_write, write_failed

KEYS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")


def space_needed(data_bytes: int) -> int:
    """Free bytes a write of `data_bytes` (uncompressed) needs: the data, HDF5's fixed part (superblock,
    object headers, dema's metadata: well under 512 KiB) and what grows with the data (chunk indexes,
    per-chunk gzip framing: under 0.1%, given 1/32). A fixed margin refused a 30 KiB file on a disk
    with 10 MiB free, and was too thin for a write of many GiB."""
    return data_bytes + 512 * 2**10 + data_bytes // 32


def check_writable(path: Path, overwrite: bool) -> None:
    """Refuse early (before minutes of collection) when the target exists or its folder is unusable."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder; --out must name a file such as {path / 'dataset.hdf5'}")
    if path.exists() and not overwrite:
        raise DataError(f"{path} already exists; pass --overwrite to replace it or choose another --out")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(f".{path.name}.probe-{os.getpid()}")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DataError(f"cannot write in {path.parent} ({reason}); choose an --out in a folder you can write to") from None


def raw_bytes(data: dict[str, np.ndarray], keys=KEYS) -> int:
    """Uncompressed size of the arrays as written (float32 and bool)."""
    total = 0
    for key in keys:
        arr = np.asarray(data[key])
        total += arr.size * (1 if key in ("terminals", "timeouts") else 4)
    return total


def check_space(path: Path, needed: int, kept: str = "") -> None:
    """Stop before writing `needed` bytes into a folder that does not have them (plus a margin)."""
    try:
        free = shutil.disk_usage(Path(path).parent).free
    except OSError:
        return
    if free < space_needed(needed):
        raise DataError(f"cannot write {path}: {free / 2**20:.0f} MiB free there, the data need up to "
                        f"{space_needed(needed) / 2**20:.1f} MiB. {kept + ' ' if kept else ''}"
                        "Free some space (or choose another --out) and collect again")


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
    keys = KEYS if next_observations else KEYS[:-1]
    check_space(path, raw_bytes(data, keys))

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            for key in keys:
                f.create_dataset(key, data=_cast(key, data[key]), compression="gzip", compression_opts=4, shuffle=True)
            _write_meta(f, meta)

    try:
        atomic_write(path, write)  # an exception (or Ctrl-C) during the write leaves nothing behind
    except (OSError, RuntimeError) as exc:
        raise write_failed(path, exc) from None
    return path


class PartialWriter:
    """A collection written part by part: `append(part)` after each part, `finish(meta)` at the end.

    The file being written is `partial` (`<stem>.partial.hdf5` beside the output). Use it as a
    context manager: leaving the block without `finish` (an error, Ctrl-C) closes the partial file
    and keeps it when it holds data (`kept` then names it and its size), else removes it."""

    def __init__(self, path: str | Path, overwrite: bool = False, next_observations: bool = True,
                 head: dict | None = None):
        self.path = Path(path)
        check_writable(self.path, overwrite)
        self.partial = self.path.with_name(f"{self.path.stem}.partial{self.path.suffix or '.hdf5'}")
        if self.partial.exists() and not overwrite:
            raise DataError(f"{self.partial} holds what an earlier, stopped collection kept; move it away (or pass "
                            "--overwrite to replace it) before collecting again")
        self.keys = KEYS if next_observations else KEYS[:-1]
        self.rows = 0
        self.kept: str = ""
        try:
            self.file = h5py.File(self.partial, "w")
            _write_meta(self.file, {**(head or {}), "partial": "an unfinished collection: the parts written so far"})
            self.file.flush()
        except (OSError, RuntimeError) as exc:
            self.partial.unlink(missing_ok=True)
            raise write_failed(self.partial, exc) from None

    def __enter__(self) -> "PartialWriter":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if self.file is not None:  # not finished
            self._abandon()

    def append(self, part: dict[str, np.ndarray]) -> None:
        """Add the part's rows (every part ends with an episode end) and flush them to disk."""
        n = len(part["rewards"])
        check_space(self.partial, raw_bytes(part, self.keys), self._kept_note())
        try:
            for key in self.keys:
                value = _cast(key, part[key])
                if key not in self.file:
                    self.file.create_dataset(key, data=value, maxshape=(None, *value.shape[1:]),
                                             chunks=(min(max(n, 1), 4096), *value.shape[1:]),
                                             compression="gzip", compression_opts=4, shuffle=True)
                else:
                    dataset = self.file[key]
                    dataset.resize(self.rows + n, axis=0)
                    dataset[self.rows:] = value
            self.file.flush()
        except (OSError, RuntimeError) as exc:
            self._undo()
            raise write_failed(self.partial, exc, self._kept_note()) from None
        self.rows += n

    def finish(self, meta: dict) -> Path:
        """Write the metadata, close, and move the partial file onto the output."""
        try:
            if "partial" in self.file["metadata"].attrs:
                del self.file["metadata"].attrs["partial"]
            _write_meta(self.file, meta)
            self.file.close()
            self.file = None
            os.replace(self.partial, self.path)
        except (OSError, RuntimeError) as exc:
            raise write_failed(self.path, exc, self._kept_note()) from None
        return self.path

    def _undo(self) -> None:
        """After a failed append: cut every array back to the rows written before it."""
        for key in self.keys:
            try:
                if key in self.file and len(self.file[key]) > self.rows:
                    self.file[key].resize(self.rows, axis=0)
            except (OSError, RuntimeError):
                pass

    def _abandon(self) -> None:
        try:
            self.file.close()
        except (OSError, RuntimeError):
            pass
        self.file = None
        if self.rows:
            self.kept = self._kept_note()
        else:
            self.partial.unlink(missing_ok=True)

    def _kept_note(self) -> str:
        if not self.rows:
            return "Nothing had been written yet."
        return (f"The {self.rows} transitions collected before it are kept in {self.partial} (complete episodes; "
                "`dema data` reads it).")


def _cast(key: str, value) -> np.ndarray:
    arr = np.asarray(value)
    return arr.astype(bool) if key in ("terminals", "timeouts") else arr.astype(np.float32)


def _write_meta(f: h5py.File, meta: dict) -> None:
    group = f.require_group("metadata")
    for key, value in meta.items():
        group.attrs[key] = value if isinstance(value, (str, int, float, np.number)) else json.dumps(value)
