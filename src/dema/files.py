"""Writing a file all at once: the one helper every writer of results, checkpoints and datasets uses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Create or replace `path` atomically: `write(tmp)` writes a temporary file in the same folder,
    which `os.replace` (atomic on one file system) then moves onto `path`.

    An interrupted or failing `write` (an exception, Ctrl-C) leaves `path` as it was and removes the
    temporary file. The temporary name, `.<stem>.tmp-<pid><suffix>`, is hidden and keeps the
    extension, for writers that choose the format from it (numpy.savez appends `.npz` otherwise).
    The folder must exist. Returns `path`.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only left when write or replace failed
    return path
