"""Selective scans with mamba-ssm's signature.

- `selective_scan_ref`: the sequential reference (ground truth, autograd through a Python loop).
- `selective_scan_fused`: the default CPU path (one autograd node, analytic backward).
- `selective_scan_fn`: what models call. It uses mamba-ssm's CUDA kernel when mamba-ssm is
  importable and the tensors are on CUDA, otherwise the fused path.

Shapes, as in `mamba_ssm.ops.selective_scan_interface.selective_scan_fn`:
u, delta, z (B, Di, L); A (Di, N); B, C (B, N, L); D, delta_bias (Di,); returns (B, Di, L).
"""

from __future__ import annotations

from dema.scan.fused import selective_scan_fused
from dema.scan.reference import selective_scan_ref

try:  # optional accelerator: never required
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _mamba_ssm_scan
except Exception:  # ImportError, or a broken CUDA build
    _mamba_ssm_scan = None

__all__ = ["selective_scan_fn", "selective_scan_ref", "selective_scan_fused", "mamba_ssm_available"]


def mamba_ssm_available() -> bool:
    return _mamba_ssm_scan is not None


def selective_scan_fn(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False
):
    """Selective scan; see the module docstring for shapes. Differentiable in every tensor."""
    if _mamba_ssm_scan is not None and u.is_cuda:
        return _mamba_ssm_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    return selective_scan_fused(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
