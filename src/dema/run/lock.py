"""One process per run directory: an exclusive lock that training and `dema eval` hold while they work.

The lock is `fcntl.flock` on the file `.lock` inside the run directory. The kernel releases it when
the holder exits, however it exits (kill -9 included), so a crashed run never leaves a stale lock;
the file stays, holding the last holder's pid, host and command, which the refusal names:

    dema train: error: runs/x is in use by pid 4242 on host1 since 2025-01-01T10:00:00+00:00
    (dema train --resume runs/x); wait for it to finish or stop it, then try again

Within one process the lock is re-entrant (training, then the final evaluation, may nest it).
On systems without `fcntl` (Windows) no lock is taken. Network file systems may not honour flock.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from pathlib import Path

from dema.errors import DemaError

LOCK_NAME = ".lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None

_held: dict[str, list] = {}  # real path of the folder -> [fd, depth]
_guard = threading.Lock()


class RunBusy(DemaError):
    """Another process holds the run directory."""


class RunLock:
    """The lock of one run directory; `with RunLock(folder, "dema eval"):` or acquire()/release()."""

    def __init__(self, folder: str | os.PathLike, purpose: str = ""):
        self.folder = Path(folder)
        self.purpose = purpose or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]).strip()
        self._key: str | None = None

    @property
    def file(self) -> Path:
        return self.folder / LOCK_NAME

    def acquire(self) -> "RunLock":
        if self._key is not None:
            return self
        if fcntl is None:
            self._key = ""
            return self
        if not self.folder.is_dir():
            raise DemaError(f"{self.folder} is not a folder; give a run directory made by `dema train`")
        key = os.path.realpath(self.folder)
        with _guard:
            if key in _held:  # this process holds it already (e.g. training, then its final evaluation)
                _held[key][1] += 1
                self._key = key
                return self
            try:
                fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise DemaError(f"cannot lock {self.folder}: {exc.strerror} ({self.file}); "
                                "check that the folder is writable") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _describe(_read(fd))
                os.close(fd)
                raise RunBusy(f"{self.folder} is in use by {holder}; two processes on one run would write every "
                              "row twice and overwrite each other's checkpoints: wait for it to finish or stop it, "
                              "then try again") from None
            _write(fd, {"pid": os.getpid(), "host": socket.gethostname(), "command": self.purpose,
                        "since": _now()})
            _held[key] = [fd, 1]
            self._key = key
        return self

    def release(self) -> None:
        key, self._key = self._key, None
        if not key:
            return
        with _guard:
            entry = _held.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
            del _held[key]
            fd = entry[0]
            try:
                os.ftruncate(fd, 0)  # the holder's details go with the lock
            except OSError:
                pass
            os.close(fd)  # closing releases the flock

    @property
    def held(self) -> bool:
        return self._key is not None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 65536).decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        return {}


def _write(fd: int, data: dict) -> None:
    try:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(data) + "\n").encode())
    except OSError:
        pass  # the lock holds without the details


def _describe(holder: dict) -> str:
    if not holder.get("pid"):
        return "another process (it has not recorded itself yet)"
    text = f"pid {holder['pid']} on {holder.get('host', '?')}"
    if holder.get("since"):
        text += f" since {holder['since']}"
    if holder.get("command"):
        text += f" ({holder['command']})"
    return text


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
