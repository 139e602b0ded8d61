"""Scanning a sequence in chunks, each from the previous chunk's last state, equals one scan."""

from __future__ import annotations

import functools

import pytest
import torch

from dema.scan import numba_available, selective_scan_ref
from dema.scan.stateful import selective_scan_with_state

from test_scan_variants import make_inputs  # noqa: E402  (same folder)

VARIANTS = {
    "ref": functools.partial(selective_scan_ref, return_last_state=True),  # the reference, from a state
    "dispatch": pytest.param(selective_scan_with_state,
                             marks=pytest.mark.skipif(not numba_available(), reason="numba is not installed")),
}


@pytest.mark.parametrize("scan", VARIANTS.values(), ids=VARIANTS.keys())
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("cuts", [(3,), (1, 2, 5), (9,)], ids=["halves", "uneven", "one-chunk"])
def test_chunked_scan_equals_whole_scan(scan, dtype, cuts):
    x = make_inputs(2, 5, 12, 6, dtype, seed=7)
    whole, last = selective_scan_ref(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], x["z"], x["delta_bias"],
                                     delta_softplus=True, return_last_state=True)
    bounds = [0, *cuts, 12]
    state, outs = None, []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        part = {k: (v[..., lo:hi] if v.dim() == 3 and k != "A" else v) for k, v in x.items()}
        out, state = scan(part["u"], part["delta"], part["A"], part["B"], part["C"], part["D"], part["z"],
                          part["delta_bias"], True, initial_state=state)
        outs.append(out)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(torch.cat(outs, dim=-1), whole, rtol=tol, atol=tol * whole.abs().max().item())
    torch.testing.assert_close(state, last, rtol=tol, atol=tol * last.abs().max().item())
