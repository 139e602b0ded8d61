"""Selective scans with mamba-ssm's signature.

- `selective_scan_ref`: the sequential reference (ground truth, autograd through a Python loop).
- `selective_scan_numba`: the fast CPU path (a Numba kernel, forward and analytic backward, memory
  linear in L; `numba_scan.py` explains it). Needs the `numba` package.
- `selective_scan_torch`: pure PyTorch, one autograd node with an analytic backward over the
  materialised (B, Di, L, N) decays and states (`torch_scan.py`). Exact, but measured slower than
  the reference on the CPU (allocating and touching those tensors costs more than the reference's
  small per-step ops: 2.4 s against 0.5 s of CPU for forward + backward at B 64, Di 128, L 60, N 64;
  see docs/PERFORMANCE.md), so on the CPU it is used only when asked for (DEMA_SCAN=torch); it is
  the CUDA path when neither mamba-ssm nor triton is installed. (Called `fused` before issue 28.)
- Without Numba (or for dtypes the kernel does not handle: half, bfloat16) the CPU path is the
  reference itself, the fastest pure-PyTorch scan we measured.
- `selective_scan_gpu`: the GPU path without a build step (Triton kernels, forward and analytic
  backward, `triton_scan.py`). Needs the `gpu` extra (`pip install "dema[gpu]"`, i.e. triton).
  Runs on the CPU only under Triton's interpreter (TRITON_INTERPRET=1), which is how tests check it.
- `selective_scan_fn`: what models call. On CUDA tensors: mamba-ssm's kernel when mamba-ssm is
  importable, else the Triton kernel, else the `torch` node; on the CPU the best available CPU path
  (see `scan_backend`). `dema.scan.stateful` continues a scan from a state (acting) on the same choice.

The compute paths (`dema.scan.paths`) force one variant: the environment variable DEMA_SCAN (ref,
torch, numba, gpu) for a whole process, `with compute_paths(scan="ref"):` for a block of code; for
benchmarks, tests, and ruling a kernel out when debugging.

Beside the scans, the other CPU kernels of the models: `numba_ssm.py` (the SelectiveSSM as one
autograd node, the SSM node) and `fused_step.py` (a Mamba policy's whole decision in one call, the
fused acting step).

Shapes, as in `mamba_ssm.ops.selective_scan_interface.selective_scan_fn` (dema.scan.contract):
u, delta, z (B, Di, L); A (Di, N), real; D, delta_bias (Di,); B and C each time-invariant (Di, N),
input-dependent (B, N, L) or grouped (B, G, N, L); returns (B, Di, L) in u's dtype (and the last
state (B, Di, N) in float32, float64 for float64 inputs). Every path takes every form at its own
speed: the kernels read B and C through their form (no per-channel copy), so time-invariant and
grouped scans cost about what input-dependent ones do. Shapes that fit no form, and a complex A,
are one ValueError on every path (mamba-ssm's own kernel, when it is the path, has its own checks
and takes a complex A).
"""

from __future__ import annotations

import functools

from dema.errors import ConfigError
from dema.scan.paths import INSTALL, ComputePaths, compute_paths, current_paths
from dema.scan.reference import selective_scan_ref
from dema.scan.torch_scan import selective_scan_torch

try:  # optional accelerator: never required
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _mamba_ssm_scan
except Exception:  # ImportError, or a broken CUDA build
    _mamba_ssm_scan = None

__all__ = [
    "selective_scan_fn",
    "selective_scan_ref",
    "selective_scan_torch",
    "selective_scan_numba",
    "selective_scan_gpu",
    "numba_available",
    "gpu_scan_available",
    "mamba_ssm_available",
    "scan_backend",
    "ComputePaths",
    "compute_paths",
    "current_paths",
]


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


@functools.cache
def _gpu_module():
    """The Triton path, imported on first use; None without triton (the `gpu` extra)."""
    try:
        from dema.scan import triton_scan
    except Exception:  # ImportError, or a triton that fails to load
        return None
    return triton_scan


def gpu_scan_available() -> bool:
    return _gpu_module() is not None


def selective_scan_gpu(*args, **kwargs):
    """The Triton kernel (see `dema.scan.triton_scan`); raises ConfigError when triton is missing."""
    module = _gpu_module()
    if module is None:
        raise ConfigError(f"DEMA_SCAN=gpu needs Triton: {INSTALL['gpu']}")
    return module.selective_scan_triton(*args, **kwargs)


def _forced_backend(u) -> str:
    """The scan the compute paths force ('' if none: DEMA_SCAN unset and no scope), checked:
    installed, and able to take `u`."""
    forced = current_paths().scan
    if not forced:
        return ""
    if forced == "numba" and _numba_module() is None:
        raise ConfigError(f"DEMA_SCAN=numba needs the numba package: {INSTALL['numba']}")
    if forced == "gpu":
        if _gpu_module() is None:
            raise ConfigError(f"DEMA_SCAN=gpu needs Triton: {INSTALL['gpu']}")
        if u is not None and not u.is_cuda and not _gpu_module().interpreting():
            raise ConfigError("DEMA_SCAN=gpu runs on CUDA tensors; on the CPU only under Triton's interpreter "
                              "(TRITON_INTERPRET=1, slow: for tests). CPU scans: DEMA_SCAN=numba|ref|torch")
    if forced == "numba" and u is not None and u.is_cuda:
        raise ConfigError("DEMA_SCAN=numba is the CPU kernel and the tensors are on CUDA; on a GPU use "
                          f"DEMA_SCAN=gpu ({INSTALL['gpu']}), torch or ref, or unset DEMA_SCAN")
    return forced


def scan_backend(u=None) -> str:
    """Name of the path `selective_scan_fn` takes for tensors like `u` (CPU float32 if None)."""
    forced = _forced_backend(u)
    if forced:
        return forced
    if u is not None and u.is_cuda:
        if _mamba_ssm_scan is not None:
            return "mamba_ssm"
        return "gpu" if _gpu_module() is not None else "torch"
    module = _numba_module()
    if module is not None and (u is None or module.supports(u)):
        return "numba"
    return "ref"


_SCANS = {"numba": selective_scan_numba, "torch": selective_scan_torch, "ref": selective_scan_ref,
          "gpu": selective_scan_gpu}


def selective_scan_fn(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False
):
    """Selective scan; see the module docstring for shapes. Differentiable in every tensor."""
    backend = scan_backend(u)
    if backend == "mamba_ssm":
        return _mamba_ssm_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    scan = _SCANS[backend]
    return scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
