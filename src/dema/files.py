"""Writing a file all at once: the one helper every writer of results, checkpoints and datasets uses."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from dema.errors import DemaError


def atomic_write(path: str | Path, write: Callable[[Path], object], keep_previous: str | Path | None = None) -> Path:
    """Create or replace `path` atomically: `write(tmp)` writes a temporary file in the same folder,
    which is flushed to disk (fsync) and then moved onto `path` by `os.replace` (atomic on one file
    system).

    An interrupted or failing `write` (an exception, Ctrl-C, a full disk) leaves `path` as it was and
    removes the temporary file. The temporary name, `.<stem>.tmp-<pid><suffix>`, is hidden and keeps
    the extension, for writers that choose the format from it (numpy.savez appends `.npz` otherwise).
    With `keep_previous`, the file being replaced is first kept under that name (a hard link, else a
    copy), so a new file that later turns out damaged can fall back to the one before it; `path`
    itself is never missing on the way. The folder must exist. Returns `path`.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        _fsync(tmp)
        if keep_previous is not None and path.is_file():
            _keep(path, Path(keep_previous))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only left when write or replace failed
    return path


def _fsync(path: Path) -> None:
    """Push a written file's data to the disk, so a power cut after the rename cannot leave it empty."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _keep(path: Path, previous: Path) -> None:
    """`previous` becomes a copy of `path` (atomically: a link or copy under a temporary name first)."""
    tmp = previous.with_name(f".{previous.stem}.tmp-{os.getpid()}{previous.suffix}")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(path, tmp)
        except OSError:  # a file system without hard links
            shutil.copy2(path, tmp)
        os.replace(tmp, previous)
    finally:
        tmp.unlink(missing_ok=True)


def write_failed(path: str | Path, exc: BaseException, kept: str = "") -> DemaError:
    """The one-line error for a file that could not be written (full disk, read-only folder, ...):
    the file, the reason, the free space, what was kept, and what to do."""
    path = Path(path)
    text = str(exc).strip()
    reason = getattr(exc, "strerror", None) or (text.splitlines()[0] if text else type(exc).__name__)
    try:
        free = f"; {shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free there"
    except OSError:
        free = ""
    return DemaError(f"cannot write {path}: {reason}{free}. {kept + ' ' if kept else ''}"
                     "Free some space (or fix the folder's permissions) and run the command again")


def write_between_markers(page: str | Path, begin: str, end: str, lines: list[str]) -> bool:
    """Replace what lies between the lines `begin` and `end` in the text file `page` with `lines`
    (atomically; the rest of the page stays as it is). False, and nothing written, when the page or
    either marker is missing: generated tables go only where a page asks for them."""
    page = Path(page)
    text = page.read_text() if page.is_file() else ""
    if begin not in text or end not in text.split(begin, 1)[1]:
        return False
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    atomic_write(page, lambda tmp: tmp.write_text(head + begin + "\n" + "\n".join(lines) + "\n" + end + tail))
    return True
