"""The Numba backward has two forms, two channels per adjoint loop (short sequences) and one channel
at a time (long ones, past PAIR_SCRATCH_BYTES of scratch); both against the reference, whichever
the shapes of the other tests pick."""

from __future__ import annotations

import pytest
import torch

from dema.scan import numba_available, selective_scan_ref

from test_scan_variants import TOL, assert_close_to_reference, make_inputs, run  # noqa: E402  (same folder)

pytestmark = pytest.mark.skipif(not numba_available(), reason="numba is not installed")


@pytest.mark.parametrize("form", ["pairs", "single"])
@pytest.mark.parametrize("shape", [(2, 5, 9, 6), (1, 4, 33, 17), (3, 1, 7, 3)], ids=lambda s: "x".join(map(str, s)))
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
