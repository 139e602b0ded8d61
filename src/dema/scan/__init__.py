"""Selective scans with mamba-ssm's signature.

- `selective_scan_ref`: the sequential reference (ground truth, autograd through a Python loop).
- `selective_scan_numba`: the fast CPU path (a Numba kernel, forward and analytic backward, memory
  linear in L; `numba_scan.py` explains it). Needs the `numba` package.
- `selective_scan_fused`: pure PyTorch, one autograd node with an analytic backward over the
  materialised (B, Di, L, N) decays and states. Exact, but measured slower than the reference on
  the CPU (allocating and touching those tensors costs more than the reference's small per-step
  ops: 2.4 s against 0.5 s of CPU for forward + backward at B 64, Di 128, L 60, N 64; see
  docs/PERFORMANCE.md), so on the CPU it is used only when asked for (DEMA_SCAN=fused); it is
  the CUDA path when mamba-ssm is missing.
- Without Numba (or for dtypes the kernel does not handle: half, bfloat16) the CPU path is the
  reference itself, the fastest pure-PyTorch scan we measured.
- `selective_scan_fn`: what models call. mamba-ssm's CUDA kernel when mamba-ssm is importable and
  the tensors are on CUDA, otherwise the best available CPU path (see `scan_backend`).

The environment variable DEMA_SCAN (ref, fused, numba) forces a CPU path, for benchmarks and for
ruling the kernel out when debugging.

Shapes, as in `mamba_ssm.ops.selective_scan_interface.selective_scan_fn`:
u, delta, z (B, Di, L); A (Di, N); B, C (B, N, L); D, delta_bias (Di,); returns (B, Di, L).
"""

from __future__ import annotations

import functools
import os

from dema.errors import ConfigError
from dema.scan.fused import selective_scan_fused
from dema.scan.reference import selective_scan_ref

try:  # optional accelerator: never required
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _mamba_ssm_scan
except Exception:  # ImportError, or a broken CUDA build
    _mamba_ssm_scan = None

__all__ = [
    "selective_scan_fn",
    "selective_scan_ref",
    "selective_scan_fused",
    "selective_scan_numba",
    "numba_available",
    "mamba_ssm_available",
    "scan_backend",
]

CPU_BACKENDS = ("numba", "fused", "ref")


def mamba_ssm_available() -> bool:
    return _mamba_ssm_scan is not None


@functools.cache
def _numba_module():
    """The Numba path, imported on first use (importing numba costs about a second)."""
    try:
        from dema.scan import numba_scan
    except ImportError:  # numba (or llvmlite) not installed, or too old for this numpy
        return None
    return numba_scan


def numba_available() -> bool:
    return _numba_module() is not None


def selective_scan_numba(*args, **kwargs):
    """The Numba kernel (see `dema.scan.numba_scan`); raises ConfigError when numba is missing."""
    module = _numba_module()
    if module is None:
        raise ConfigError("the Numba scan needs the numba package: pip install numba")
    return module.selective_scan_numba(*args, **kwargs)


def scan_backend(u=None) -> str:
    """Name of the path `selective_scan_fn` takes for tensors like `u` (CPU float32 if None)."""
    if u is not None and u.is_cuda:
        return "mamba_ssm" if _mamba_ssm_scan is not None else "fused"
    forced = os.environ.get("DEMA_SCAN", "").strip().lower()
    if forced:
        if forced not in CPU_BACKENDS:
            raise ConfigError(f"DEMA_SCAN={forced!r} is not a scan; use one of {', '.join(CPU_BACKENDS)}")
        return forced
    module = _numba_module()
    if module is not None and (u is None or module.supports(u)):
        return "numba"
    return "ref"


_CPU_SCANS = {"numba": selective_scan_numba, "fused": selective_scan_fused, "ref": selective_scan_ref}


def selective_scan_fn(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False
):
    """Selective scan; see the module docstring for shapes. Differentiable in every tensor."""
    if _mamba_ssm_scan is not None and u.is_cuda:
        return _mamba_ssm_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    scan = _CPU_SCANS[scan_backend(u)]
    return scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
