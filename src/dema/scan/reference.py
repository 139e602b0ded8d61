"""The sequential selective scan: ground truth for every other implementation.

Mamba-1's selective state space recurrence, per batch b, channel d and state index n:

    h_l = exp(delta_l * A) * h_{l-1} + delta_l * B_l * u_l,     h_{-1} = 0 (or a given state)
    y_l = sum_n C_l[n] * h_l[n]  +  D * u_l
    out = y * silu(z)  (when z is given)

Written as plainly as possible, one time step per loop iteration, so that it can be read
against the paper and trusted; autograd differentiates it. `initial_state` continues a sequence
from the final state of the one before it: scanning [x1; x2] from zero equals scanning x1, then
x2 from x1's last state (tests/scan/test_scan_with_state.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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

    u, delta, z: (B, Di, L); A: (Di, N); B, C: (B, N, L); D, delta_bias: (Di,); initial_state:
    h_{-1} (B, Di, N), zero if None. Returns out (B, Di, L), and the final state h_{L-1}
    (B, Di, N) if return_last_state.
    """
    delta = discretize_delta(delta, delta_bias, delta_softplus)
    batch, d_inner, length = u.shape
    h = u.new_zeros(batch, d_inner, A.shape[1]) if initial_state is None else initial_state
    ys = []
    for l in range(length):
        decay = torch.exp(delta[:, :, l, None] * A)  # (B, Di, N)
        drive = (delta[:, :, l] * u[:, :, l])[:, :, None] * B[:, None, :, l]  # (B, Di, N)
        h = decay * h + drive
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, :, l]))
    y = torch.stack(ys, dim=-1)  # L x (B, Di) -> (B, Di, L)
    out = apply_skip_and_gate(y, u, D, z)
    return (out, h) if return_last_state else out
