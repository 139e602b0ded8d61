"""Timing, memory and machine facts shared by the benchmarks.

Timing: wall-clock medians over repeats after warm-up, plus the median CPU time of the process
(user + system, all threads). On a shared machine the wall time rises with other people's load
while the CPU time mostly does not; reporting both tells a slow kernel from a busy machine.

Peak memory (CPU): the resident-set high-water mark (VmHWM) of this process, reset before the
measured call through /proc/self/clear_refs, minus the resident size at the reset, after
returning freed heap memory to the system (malloc_trim) so that cached pages do not hide growth.
Linux only; elsewhere it is reported as None. On CUDA: torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import ctypes
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from dema.provenance import machine, versions


def measure(fn: Callable[[], object], repeats: int, warmup: int = 1, budget_s: float | None = None) -> dict:
    """Median wall and CPU milliseconds of `fn()` over `repeats` runs (fewer if over `budget_s`):
    {"ms", "min_ms", "cpu_ms", "repeats"}."""
    return measure_interleaved({"fn": fn}, repeats, warmup, budget_s)["fn"]


def measure_interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                        budget_s: float | None = None) -> dict[str, dict]:
    """`measure` for several functions, alternating between them on every repeat, so that a change
    of load on a shared machine hits all of them alike (their ratio is what we compare)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    walls = {name: [] for name in fns}
    cpus = {name: [] for name in fns}
    started = time.perf_counter()
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync()
            wall0, cpu0 = time.perf_counter(), time.process_time()
            fn()
            _sync()
            walls[name].append(1e3 * (time.perf_counter() - wall0))
            cpus[name].append(1e3 * (time.process_time() - cpu0))
        if budget_s is not None and time.perf_counter() - started > budget_s and len(walls[name]) >= 3:
            break
    return {
        name: {"ms": statistics.median(walls[name]), "min_ms": min(walls[name]),
               "cpu_ms": statistics.median(cpus[name]), "repeats": len(walls[name])}
        for name in fns
    }


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _release_free_heap() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def peak_memory_mb(fn: Callable[[], object], device: torch.device | str = "cpu") -> float | None:
    """Extra memory (MB) that one call of `fn` needs at its peak, above what was resident before."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    _release_free_heap()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current VmRSS
    except OSError:
        return None
    before = _status_kib("VmRSS")
    fn()
    peak = _status_kib("VmHWM")
    if before is None or peak is None:
        return None
    return (peak - before) / 1024


def machine_info() -> dict:
    """CPU model, cores, load, versions and threads: what every result must carry (dema.provenance)."""
    where, have = machine(), versions()
    info = {
        "cpu": where["cpu"],
        "cores": where["cpu_count"],
        "load_1min": where["load_1min"],
        "torch": have.get("torch", torch.__version__),
        "torch_threads": where["torch_threads"],
        "python": have["python"],
        "malloc": where["malloc"],
        "numba": have.get("numba"),
    }
    if "cuda_device" in where:
        info["cuda_device"] = where["cuda_device"]
    return info
