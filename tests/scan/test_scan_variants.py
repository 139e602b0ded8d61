"""Every fast selective scan against the sequential reference: outputs and gradients of all inputs.

The reference runs in float64 on the same inputs; a float64 variant must match it to ~1e-10 and a
float32 variant to ~1e-4, both relative to the largest magnitude of the reference tensor (the
recurrence sums up to L terms, so elementwise relative error is meaningless near zero crossings).
"""

from __future__ import annotations

import pytest
import torch

import dema.scan
from dema.errors import ConfigError
from dema.scan import (compute_paths, numba_available, scan_backend, selective_scan_fn, selective_scan_numba,
                       selective_scan_ref, selective_scan_torch)

VARIANTS = {
    "torch": selective_scan_torch,
    "numba": pytest.param(selective_scan_numba,
                          marks=pytest.mark.skipif(not numba_available(), reason="numba is not installed")),
}
TOL = {torch.float64: 1e-10, torch.float32: 1e-4}

# (batch, d_inner, length, d_state): odd sizes, L = 1, N = 1, and one mid-size case
SHAPES = [(2, 3, 7, 4), (1, 1, 1, 1), (3, 5, 1, 6), (2, 4, 9, 1), (1, 2, 33, 17), (4, 16, 20, 8)]


def make_inputs(batch, d_inner, length, d_state, dtype, seed=0):
    """Inputs in Mamba's range: A < 0, delta around softplus^-1 of 0.001..0.1 before bias."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).to(dtype)

    return {
        "u": randn(batch, d_inner, length),
        "delta": randn(batch, d_inner, length, scale=0.5),
        "A": -torch.exp(randn(d_inner, d_state)),
        "B": randn(batch, d_state, length),
        "C": randn(batch, d_state, length),
        "D": randn(d_inner),
        "z": randn(batch, d_inner, length),
        "delta_bias": randn(d_inner, scale=0.5) - 2.0,
    }


def run(scan, inputs, *, softplus, last_state, use_optional=True, seed=1):
    """Outputs and the gradients of a random scalar function of them w.r.t. every input."""
    leaves = {k: v.detach().clone().requires_grad_() for k, v in inputs.items()}
    optional = {k: leaves[k] for k in ("D", "z", "delta_bias")} if use_optional else {}
    result = scan(leaves["u"], leaves["delta"], leaves["A"], leaves["B"], leaves["C"], **optional,
                  delta_softplus=softplus, return_last_state=last_state)
    out, last = result if last_state else (result, None)
    gen = torch.Generator().manual_seed(seed)
    loss = (out * torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.dtype)).sum()
    if last is not None:
        loss = loss + (last * torch.randn(last.shape, generator=gen, dtype=torch.float64).to(last.dtype)).sum()
    used = [k for k in leaves if k in ("u", "delta", "A", "B", "C") or k in optional]
    grads = torch.autograd.grad(loss, [leaves[k] for k in used])
    tensors = {"out": out, **({"last_state": last} if last is not None else {})}
    tensors.update({f"grad_{k}": g for k, g in zip(used, grads)})
    return tensors


def assert_close_to_reference(got: dict, want: dict, tol: float):
    assert got.keys() == want.keys()
    for name, ref in want.items():
        scale = ref.abs().max().item() or 1.0
        err = (got[name].double() - ref).abs().max().item() / scale
        assert err <= tol, f"{name}: relative error {err:.2e} > {tol:.0e}"


@pytest.mark.parametrize("scan", VARIANTS.values(), ids=VARIANTS.keys())
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_matches_reference(scan, shape, dtype):
    inputs = make_inputs(*shape, dtype=dtype, seed=sum(shape))
    want = run(selective_scan_ref, {k: v.double() for k, v in inputs.items()}, softplus=True, last_state=False)
    got = run(scan, inputs, softplus=True, last_state=False)
    assert got["out"].dtype == dtype
    assert_close_to_reference(got, want, TOL[dtype])


@pytest.mark.parametrize("scan", VARIANTS.values(), ids=VARIANTS.keys())
@pytest.mark.parametrize("softplus", [False, True], ids=["raw-delta", "softplus"])
@pytest.mark.parametrize("optional", [False, True], ids=["bare", "D-z-bias"])
def test_options_and_last_state(scan, softplus, optional):
    """return_last_state (whose gradient flows too), with and without D, z, delta_bias, softplus."""
    inputs = make_inputs(2, 5, 11, 7, torch.float64, seed=3)
    if not softplus:  # a raw delta must be positive to be a step size
        inputs["delta"] = inputs["delta"].abs() * 0.2
        inputs["delta_bias"] = inputs["delta_bias"].abs() * 0.01
    kwargs = dict(softplus=softplus, last_state=True, use_optional=optional)
    want = run(selective_scan_ref, inputs, **kwargs)
    assert_close_to_reference(run(scan, inputs, **kwargs), want, TOL[torch.float64])


@pytest.mark.skipif(not numba_available(), reason="numba is not installed")
def test_numba_accepts_non_contiguous_inputs():
    """Models pass B and C as transposed views; the kernel must not read them with wrong strides."""
    inputs = make_inputs(3, 6, 10, 5, torch.float64, seed=4)
    views = dict(inputs)
    views["B"] = inputs["B"].transpose(1, 2).contiguous().transpose(1, 2)  # same values, (B, N, L) view
    views["u"] = inputs["u"].transpose(0, 1).contiguous().transpose(0, 1)
    assert not views["B"].is_contiguous() and not views["u"].is_contiguous()
    want = run(selective_scan_ref, inputs, softplus=True, last_state=True)
    assert_close_to_reference(run(selective_scan_numba, views, softplus=True, last_state=True), want, 1e-10)


def test_dispatch():
    u = torch.zeros(1, 2, 3)
    with compute_paths(scan=""):  # chosen per call, whatever the environment says
        assert scan_backend(u) == ("numba" if numba_available() else "ref")
        assert scan_backend(u.half()) == "ref"  # the kernel handles float32/float64 only
    with compute_paths(scan="ref"):
        assert scan_backend(u) == "ref"
    with compute_paths(scan="fused"):  # the `torch` node's old name
        assert scan_backend(u) == "torch"
    with pytest.raises(ConfigError, match="scan='cuda-please' is not a scan"):
        with compute_paths(scan="cuda-please"):
            pass


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_selective_scan_fn_uses_the_chosen_backend(backend, monkeypatch):
    if backend == "numba" and not numba_available():
        pytest.skip("numba is not installed")
    inputs = make_inputs(2, 3, 5, 4, torch.float64, seed=5)
    want = run(selective_scan_ref, inputs, softplus=True, last_state=True)
    calls = []
    chosen = {"torch": selective_scan_torch, "numba": selective_scan_numba}[backend]
    monkeypatch.setitem(dema.scan._SCANS, backend, lambda *a, **k: calls.append(backend) or chosen(*a, **k))
    with compute_paths(scan=backend):
        got = run(selective_scan_fn, inputs, softplus=True, last_state=True)
    assert calls == [backend]
    assert_close_to_reference(got, want, 1e-10)


@pytest.mark.parametrize("scan", VARIANTS.values(), ids=VARIANTS.keys())
@pytest.mark.parametrize("name", ["u", "delta", "A", "B", "C"])
def test_nan_inputs_give_nan_outputs(scan, name):
    """A diverged model must show up as a non-finite loss: the fast-math kernel must not hide NaN."""
    inputs = make_inputs(2, 3, 6, 4, torch.float32, seed=6)
    inputs[name].view(-1)[0] = float("nan")
    out = scan(inputs["u"], inputs["delta"], inputs["A"], inputs["B"], inputs["C"], inputs["D"], inputs["z"],
               inputs["delta_bias"], True)
    assert out.isnan().any()
