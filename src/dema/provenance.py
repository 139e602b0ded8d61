"""Where a number came from: the package versions and the machine, recorded beside every dataset,
benchmark and evaluation. The one copy of that logic; callers pick (or rename) the keys they store.

    versions()  {"python": "3.12.3", "dema": "0.1.0", "numpy": ..., "torch": ..., ...}
    machine()   {"cpu": "AMD EPYC ...", "cpu_count": 2, "platform": ..., "load_1min": ..., ...}

Collected datasets store `versions()` as their `versions` metadata (JSON), so its keys are only
ever added to, never renamed.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from dema.machine import cpu_model

# Distribution names, in the order they are recorded: the packages that shape data, training and
# timings, then the optional ones (recorded only when installed, like any package that is missing).
PACKAGES = ("dema", "numpy", "gymnasium", "mujoco", "h5py", "torch", "gymnasium-robotics", "stable-baselines3",
            "numba", "mamba-ssm", "mambapy")


def versions() -> dict[str, str]:
    """Python's version and those of the installed packages of `PACKAGES` (a missing one is left out)."""
    return {"python": platform.python_version(), **package_versions(*PACKAGES)}


def package_versions(*names: str) -> dict[str, str]:
    """The installed version of each named package; a missing one is left out."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def machine() -> dict:
    """The machine and process: CPU model, logical CPUs, OS, 1-minute load, torch threads, malloc,
    and `cuda_device` when torch sees a GPU."""
    import torch

    info = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "load_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "torch_threads": torch.get_num_threads(),
        "malloc": "jemalloc" if "jemalloc" in os.environ.get("LD_PRELOAD", "") else "system",
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
    return info


@functools.cache
def git_commit() -> str | None:
    """The commit of the dema checkout this runs from, with "-dirty" when tracked files differ from it
    (None outside a git checkout, e.g. an installed wheel).

    Asked once per process: the code a process runs is what it imported, so a `git pull` into the
    checkout while a long sweep's worker trains must not relabel the worker's later records with the
    new commit (a DeMa cell ran the old numba kernels in memory while its record named the new HEAD)."""
    here = Path(__file__).resolve().parent

    def git(*args) -> str | None:
        try:
            out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, cwd=here)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
