"""The selective scan continued from a given state, for acting with a recurrent cache.

`selective_scan_with_state(..., initial_state=h)` returns (out, last state) for a chunk of tokens
that follows a sequence whose final state was h: scanning [x1; x2] from zero equals scanning x1,
then x2 from x1's last state (tested). With it, RNN-like acting can push the three tokens of one
environment step (R_t, a_{t-1}, s_t) through each layer as one chunk, instead of three single-token
passes (see docs/PERFORMANCE.md, "Acting"). Inference only: no gradient flows.

It takes the scan `selective_scan_fn` would (`scan_backend`, so DEMA_SCAN and `compute_paths` hold
here too), in the form that starts from a state: the Numba and Triton kernels have one; mamba-ssm's
kernel has none, so its place goes to the Triton kernel when installed, else the reference; the
`torch` node's analytic backward is for training, and without a gradient its forward is the
reference's arithmetic, so acting under DEMA_SCAN=torch runs the reference.
"""

from __future__ import annotations

import torch

from dema.scan import gpu_scan_available, scan_backend, selective_scan_ref


def stateful_backend(u) -> str:
    """The scan `selective_scan_with_state` runs for tensors like `u`: 'numba', 'gpu' or 'ref'."""
    backend = scan_backend(u)
    if backend == "mamba_ssm":
        backend = "gpu" if gpu_scan_available() else "ref"
    return backend if backend in ("numba", "gpu") else "ref"


@torch.no_grad()
def selective_scan_with_state(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                              initial_state=None):
    """(out (B, Di, L), last state (B, Di, N)); shapes as `selective_scan_fn`. Inference only."""
    backend = stateful_backend(u)
    if backend == "gpu":
        from dema.scan.triton_scan import selective_scan_triton_from_state

        return selective_scan_triton_from_state(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state)
    if backend == "numba":
        from dema.scan.numba_scan import selective_scan_numba_from_state

        return selective_scan_numba_from_state(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state)
    return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state=True,
                              initial_state=initial_state)
