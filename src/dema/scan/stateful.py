"""The selective scan continued from a given state, for acting with a recurrent cache.

`selective_scan_with_state(..., initial_state=h)` returns (out, last state) for a chunk of tokens
that follows a sequence whose final state was h: scanning [x1; x2] from zero equals scanning x1,
then x2 from x1's last state (tested). With it, RNN-like acting can push the three tokens of one
environment step (R_t, a_{t-1}, s_t) through each layer as one chunk, instead of three single-token
passes (see docs/PERFORMANCE.md, "Acting"). Inference only: no gradient flows.
"""

from __future__ import annotations

import torch

from dema.scan import numba_available
from dema.scan.reference import apply_skip_and_gate, discretize_delta


@torch.no_grad()
def selective_scan_with_state_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                                  initial_state=None):
    """The reference recurrence (dema.scan.reference) started from `initial_state` (B, Di, N)."""
    delta = discretize_delta(delta, delta_bias, delta_softplus)
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1]) if initial_state is None else initial_state
    ys = []
    for l in range(u.shape[-1]):
        h = torch.exp(delta[:, :, l, None] * A) * h + (delta[:, :, l] * u[:, :, l])[:, :, None] * B[:, None, :, l]
        ys.append((h @ C[:, :, l, None]).squeeze(-1))  # (B, Di, N) @ (B, N, 1) -> (B, Di)
    y = torch.stack(ys, dim=-1)  # L x (B, Di) -> (B, Di, L)
    return apply_skip_and_gate(y, u, D, z), h


def selective_scan_with_state(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                              initial_state=None):
    """(out (B, Di, L), last state (B, Di, N)); shapes as `selective_scan_fn`. Inference only."""
    if numba_available() and u.device.type == "cpu" and u.dtype in (torch.float32, torch.float64):
        from dema.scan.numba_scan import selective_scan_numba_from_state

        return selective_scan_numba_from_state(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state)
    return selective_scan_with_state_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state)
