"""The selective scan continued from a given state, for acting with a recurrent cache.

`selective_scan_with_state(..., initial_state=h)` returns (out, last state) for a chunk of tokens
that follows a sequence whose final state was h: scanning [x1; x2] from zero equals scanning x1,
then x2 from x1's last state (tested). With it, RNN-like acting can push the three tokens of one
environment step (R_t, a_{t-1}, s_t) through each layer as one chunk, instead of three single-token
passes (see docs/PERFORMANCE.md, "Acting"). Inference only: no gradient flows.
"""

from __future__ import annotations

import torch

from dema.scan import gpu_scan_available, numba_available, selective_scan_ref


@torch.no_grad()
def selective_scan_with_state(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                              initial_state=None):
    """(out (B, Di, L), last state (B, Di, N)); shapes as `selective_scan_fn`. Inference only.

    The Numba kernel on the CPU and the Triton kernel on CUDA where they apply, else the sequential
    reference (`selective_scan_ref`)."""
    if u.is_cuda and gpu_scan_available():
        from dema.scan.triton_scan import selective_scan_triton_from_state

        return selective_scan_triton_from_state(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state)
    if numba_available() and u.device.type == "cpu" and u.dtype in (torch.float32, torch.float64):
        from dema.scan.numba_scan import selective_scan_numba_from_state

        return selective_scan_numba_from_state(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state)
    return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state=True,
                              initial_state=initial_state)
