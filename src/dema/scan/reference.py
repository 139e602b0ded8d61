"""The sequential selective scan: ground truth for every other implementation.

Mamba-1's selective state space recurrence, per batch b, channel d and state index n:

    h_l = exp(delta_l * A) * h_{l-1} + delta_l * B_l * u_l,     h_{-1} = 0 (or a given state)
    y_l = sum_n C_l[n] * h_l[n]  +  D * u_l
    out = y * silu(z)  (when z is given)

Written as plainly as possible, one time step per loop iteration, so that it can be read
against the paper and trusted; autograd differentiates it. `initial_state` continues a sequence
from the final state of the one before it: scanning [x1; x2] from zero equals scanning x1, then
x2 from x1's last state (tests/scan/test_scan_with_state.py).

B and C may each be time-invariant, input-dependent or grouped, as in mamba-ssm (dema.scan.contract
checks the shapes); the recurrence runs in float32 (float64 for float64 inputs), the output comes
back in u's dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dema.scan.contract import INPUT_DEPENDENT, Operand, cast_inputs, check, compute_dtype, per_channel


def discretize_delta(delta: torch.Tensor, delta_bias: torch.Tensor | None, delta_softplus: bool) -> torch.Tensor:
    """delta (B, Di, L) -> the step size actually used by the scan."""
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    return delta


def apply_skip_and_gate(y, u, D, z):
    """The parts of Mamba's scan output outside the recurrence: the D skip and the SiLU(z) gate."""
    if D is not None:
        y = y + u * D[:, None]
    if z is not None:
        y = y * F.silu(z)
    return y


def _at(X: torch.Tensor, l: int) -> torch.Tensor:
    """Step l of a `per_channel` B or C: (batch|1, Di|1, N); a time-invariant one has one step."""
    return X[..., l if X.shape[-1] > 1 else 0]


def _readout(h: torch.Tensor, C: torch.Tensor, form: Operand, l: int) -> torch.Tensor:
    """y_l = <C_l, h_l> per (batch, channel): (B, Di, N) -> (B, Di)."""
    if form.kind == INPUT_DEPENDENT:  # one C row per batch element: a batched matrix-vector product
        return torch.einsum("bdn,bn->bd", h, C[:, 0, :, l])
    return (h * _at(C, l)).sum(-1)


def selective_scan_ref(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    initial_state: torch.Tensor | None = None,
):
    """Sequential selective scan with mamba-ssm's signature (plus `initial_state`).

    u, delta, z: (B, Di, L); A: (Di, N); B, C each (Di, N), (B, N, L) or (B, G, N, L) (see
    dema.scan.contract); D, delta_bias: (Di,); initial_state: h_{-1} (B, Di, N), zero if None.
    Returns out (B, Di, L) in u's dtype, and the final state h_{L-1} (B, Di, N) in the compute
    dtype (float32, or float64 for float64 inputs) if return_last_state.
    """
    B_form, C_form = check(u, delta, A, B, C, D, z, delta_bias, initial_state)
    out_dtype = u.dtype
    dtype = compute_dtype(u, delta, A, B, C, D, z, delta_bias, initial_state)
    u, delta, A, B, C, D, z, delta_bias, h = cast_inputs(dtype, u, delta, A, B, C, D, z, delta_bias, initial_state)
    delta = discretize_delta(delta, delta_bias, delta_softplus)
    batch, d_inner, length = u.shape
    B, C = per_channel(B, B_form, d_inner), per_channel(C, C_form, d_inner)  # broadcastable (B, Di, N, L)
    if h is None:
        h = u.new_zeros(batch, d_inner, A.shape[1])
    ys = []
    for l in range(length):
        decay = torch.exp(delta[:, :, l, None] * A)  # (B, Di, N)
        drive = (delta[:, :, l] * u[:, :, l])[:, :, None] * _at(B, l)  # (B, Di, 1) * (B|1, Di|1, N)
        h = decay * h + drive
        ys.append(_readout(h, C, C_form, l))
    y = torch.stack(ys, dim=-1)  # L x (B, Di) -> (B, Di, L)
    out = apply_skip_and_gate(y, u, D, z).to(out_dtype)
    return (out, h) if return_last_state else out
