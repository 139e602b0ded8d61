"""The Numba backward has two forms, two channels per adjoint loop (where both read the same rows of
B and C; the channels go through blocks of CHANNEL_BLOCK) and one channel at a time (elsewhere);
both against the reference, whichever the shapes of the other tests pick. Both run long sequences
in chunks of steps whose scratch fits in PAIR_SCRATCH_BYTES (forced small here: every form of B
and C, chunks that do and do not divide the length, against the reference and against one chunk).
Both also take strided (B, L, Di)-layout views, as the SSM node passes them (test_strided_inputs_...)."""

from __future__ import annotations

import pytest
import torch

from dema.scan import numba_available, selective_scan_ref

from test_scan_variants import TOL, assert_close_to_reference, make_inputs, run  # noqa: E402  (same folder)

pytestmark = pytest.mark.skipif(not numba_available(), reason="numba is not installed")


def _force(monkeypatch, form: str, chunk: int | None = None):
    """Run the `form` backward ("pairs" where the rows allow it, or "single"), in chunks of `chunk` steps
    (the scan's own choice takes pairs only for one chunk)."""
    from dema.scan import numba_scan

    share_rows = numba_scan._pairs_share_rows
    monkeypatch.setattr(numba_scan, "_pairs_on_contiguous", lambda d_inner, Bt, Ct, chunk, length:
                        form == "pairs" and share_rows(d_inner, Bt, Ct))
    if chunk is not None:
        monkeypatch.setattr(numba_scan, "chunk_steps", lambda length, d_state, itemsize: min(chunk, length))


@pytest.mark.parametrize("form", ["pairs", "single"])
@pytest.mark.parametrize("shape", [(2, 5, 9, 6), (1, 4, 33, 17), (3, 1, 7, 3), (2, 37, 5, 4)],
                         ids=lambda s: "x".join(map(str, s)))  # 37 channels: two blocks of 16 and an odd rest
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_both_backward_forms_match_the_reference(monkeypatch, form, shape, dtype):
    from dema.scan import numba_scan

    _force(monkeypatch, form)
    inputs = make_inputs(*shape, dtype=dtype, seed=11 + sum(shape))
    want = run(selective_scan_ref, {k: v.double() for k, v in inputs.items()}, softplus=True, last_state=True)
    got = run(numba_scan.selective_scan_numba, inputs, softplus=True, last_state=True)
    assert_close_to_reference(got, want, TOL[dtype])


def _with_form(inputs: dict, name: str, form: str, groups: int = 3) -> dict:
    """B or C (input-dependent (B, N, L) in `inputs`) as a time-invariant or grouped operand."""
    X = inputs[name]
    batch, d_state, length = X.shape
    d_inner = inputs["u"].shape[1]
    if form == "time-invariant":  # (Di, N): one row per channel, the same at every step
        X = torch.sin(torch.arange(d_inner * d_state, dtype=torch.float64)).reshape(d_inner, d_state).to(X.dtype)
    elif form == "grouped":  # (B, G, N, L): a row per group of channels (2 each: pairs allowed)
        X = torch.stack([X * (g + 1) for g in range(groups)], dim=1)
    return {**inputs, name: X}


@pytest.mark.parametrize("form", ["pairs", "single"])
@pytest.mark.parametrize("bc", ["input-dependent", "time-invariant", "grouped"])
@pytest.mark.parametrize("length,chunk", [(9, 3), (7, 3), (33, 4), (5, 1)], ids=["9by3", "7by3", "33by4", "5by1"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_chunked_backward_matches_the_reference_and_one_chunk(monkeypatch, form, bc, length, chunk, dtype):
    """Long sequences run the backward chunk by chunk (from the states the forward kept at each
    chunk's start, carrying dL/dh back): the same gradients as the reference, and as one chunk to
    float rounding, with B and C in every form (time-invariant rows sum over the chunks)."""
    from dema.scan import numba_scan

    inputs = make_inputs(2, 6, length, 5, dtype=dtype, seed=5 + length)
    inputs = _with_form(_with_form(inputs, "B", bc), "C", "input-dependent" if bc == "grouped" else bc)
    want = run(selective_scan_ref, {k: v.double() for k, v in inputs.items()}, softplus=True, last_state=True)
    _force(monkeypatch, form)
    whole = run(numba_scan.selective_scan_numba, inputs, softplus=True, last_state=True)
    _force(monkeypatch, form, chunk)
    chunked = run(numba_scan.selective_scan_numba, inputs, softplus=True, last_state=True)
    assert_close_to_reference(chunked, want, TOL[dtype])
    assert_close_to_reference(chunked, {k: v.double() for k, v in whole.items()},
                              {torch.float64: 1e-13, torch.float32: 1e-6}[dtype])


def test_the_preset_is_one_chunk_and_long_sequences_chunks_that_fit():
    from dema.scan import numba_scan

    assert numba_scan.chunk_steps(60, 64, 4) == 60 and numba_scan.chunk_steps(60, 64, 8) == 60
    for itemsize in (4, 8):
        chunk = numba_scan.chunk_steps(3000, 64, itemsize)
        assert 100 < chunk < 3000 and 4 * (chunk + 1) * 64 * itemsize <= numba_scan.PAIR_SCRATCH_BYTES
    assert numba_scan.chunk_steps(3000, 10 ** 6, 8) == 1  # never zero steps
    # the scan's contiguous arrays take pairs only as one chunk (the SSM node takes them always)
    rows = torch.zeros(8, 1, 3000, 64)
    assert not numba_scan._pairs_on_contiguous(128, rows, rows, numba_scan.chunk_steps(3000, 64, 4), 3000)
    assert numba_scan._pairs_on_contiguous(128, rows[:, :, :60], rows[:, :, :60], 60, 60)
    assert not numba_scan._pairs_on_contiguous(6, torch.zeros(8, 2, 60, 64), rows[:, :, :60], 60, 60)  # 3 per group


@pytest.mark.parametrize("form", ["pairs", "single"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_strided_inputs_match_contiguous_ones(monkeypatch, form, dtype):
    """The kernels read u, delta, z, grad_out and write du, ddelta, dz element by element: transposed
    views of (B, L, Di) arrays (what dema.scan.numba_ssm passes) give the same results."""
    import numpy as np

    from dema.scan import numba_scan

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
        grad_first = np.zeros_like(grad_last)
        # steps 0 to length - 1 in one call, from a zero state (h_before, here grad_last, unread)
        numba_scan._backward_kernel(A, D, True, True, form == "pairs", 0, length,
                                    *[arr(per_step[k]) for k in ("u", "delta", "z", "sig_z", "sig_raw")], Bt, Ct,
                                    arr(per_step["grad_out"]), grad_last, grad_last, *outs, *parts, grad_first)
        return [np.ascontiguousarray(o) for o in outs + parts + [grad_first]]

    tol = {torch.float64: 1e-12, torch.float32: 1e-5}[dtype]  # fastmath may sum in another order
    for got, want in zip(backward(True), backward(False)):
        np.testing.assert_allclose(got, want, rtol=0, atol=tol * np.abs(want).max())
