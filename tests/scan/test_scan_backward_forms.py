"""The Numba backward has two forms, two channels per adjoint loop (short sequences; the channels go
through blocks of CHANNEL_BLOCK) and one channel at a time (long ones, past PAIR_SCRATCH_BYTES of
scratch); both against the reference, whichever the shapes of the other tests pick. Both also take
strided (B, L, Di)-layout views, as the SSM node passes them (test_strided_inputs_...)."""

from __future__ import annotations

import pytest
import torch

from dema.scan import numba_available, selective_scan_ref

from test_scan_variants import TOL, assert_close_to_reference, make_inputs, run  # noqa: E402  (same folder)

pytestmark = pytest.mark.skipif(not numba_available(), reason="numba is not installed")


@pytest.mark.parametrize("form", ["pairs", "single"])
@pytest.mark.parametrize("shape", [(2, 5, 9, 6), (1, 4, 33, 17), (3, 1, 7, 3), (2, 37, 5, 4)],
                         ids=lambda s: "x".join(map(str, s)))  # 37 channels: two blocks of 16 and an odd rest
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_both_backward_forms_match_the_reference(monkeypatch, form, shape, dtype):
    from dema.scan import numba_scan

    monkeypatch.setattr(numba_scan, "PAIR_SCRATCH_BYTES", 1 << 40 if form == "pairs" else 0)
    assert numba_scan._use_pairs(shape[2], shape[3], 8) == (form == "pairs")
    inputs = make_inputs(*shape, dtype=dtype, seed=11 + sum(shape))
    want = run(selective_scan_ref, {k: v.double() for k, v in inputs.items()}, softplus=True, last_state=True)
    got = run(numba_scan.selective_scan_numba, inputs, softplus=True, last_state=True)
    assert_close_to_reference(got, want, TOL[dtype])


def test_the_preset_takes_pairs_and_long_sequences_one_channel():
    from dema.scan import numba_scan

    assert numba_scan._use_pairs(60, 64, 4) and numba_scan._use_pairs(60, 64, 8)
    assert not numba_scan._use_pairs(3000, 64, 4)


@pytest.mark.parametrize("form", ["pairs", "single"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_strided_inputs_match_contiguous_ones(monkeypatch, form, dtype):
    """The kernels read u, delta, z, grad_out and write du, ddelta, dz element by element: transposed
    views of (B, L, Di) arrays (what dema.scan.numba_ssm passes) give the same results."""
    import numpy as np

    from dema.scan import numba_scan

    monkeypatch.setattr(numba_scan, "PAIR_SCRATCH_BYTES", 1 << 40 if form == "pairs" else 0)
    batch, d_inner, length, d_state = 2, 21, 7, 5
    inputs = make_inputs(batch, d_inner, length, d_state, dtype=dtype, seed=3)
    A, D = inputs["A"].numpy(), inputs["D"].numpy()
    Bt = inputs["B"].transpose(1, 2).contiguous().numpy()[:, None]  # (B, N, L) -> rows (B, 1, L, N)
    Ct = inputs["C"].transpose(1, 2).contiguous().numpy()[:, None]
    per_step = {k: inputs[k] for k in ("u", "delta", "z")}
    per_step["sig_z"] = torch.sigmoid(per_step["z"])
    per_step["sig_raw"] = torch.sigmoid(per_step["delta"])
    per_step["grad_out"] = torch.randn(batch, d_inner, length, dtype=dtype)
    grad_last = torch.randn(batch, d_inner, d_state, dtype=dtype).numpy()

    def backward(strided):
        def arr(t):  # (B, Di, L) values, stored (B, Di, L) or (B, L, Di)
            return t.transpose(1, 2).contiguous().numpy().transpose(0, 2, 1) if strided else t.contiguous().numpy()

        outs = [arr(torch.zeros(batch, d_inner, length, dtype=dtype)) for _ in range(3)]
        parts = [np.zeros((batch, d_inner, d_state), A.dtype), np.zeros((batch, d_inner), A.dtype),
                 np.zeros((batch, d_inner), A.dtype), np.zeros_like(Bt), np.zeros_like(Ct)]
        numba_scan._backward_kernel(A, D, True, True, numba_scan._use_pairs(length, d_state, 8),
                                    *[arr(per_step[k]) for k in ("u", "delta", "z", "sig_z", "sig_raw")], Bt, Ct,
                                    arr(per_step["grad_out"]), grad_last, *outs, *parts)
        return [np.ascontiguousarray(o) for o in outs + parts]

    tol = {torch.float64: 1e-12, torch.float32: 1e-5}[dtype]  # fastmath may sum in another order
    for got, want in zip(backward(True), backward(False)):
        np.testing.assert_allclose(got, want, rtol=0, atol=tol * np.abs(want).max())
