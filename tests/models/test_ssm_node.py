"""The SSM node (dema.scan.numba_ssm) against the plain PyTorch forward (DEMA_SSM=ref, ssm="ref"):
outputs and the gradients of the input and of every parameter, float64 to 1e-10 and float32 to
1e-4 relative to the largest magnitude, as tests/scan compares the scans."""

from __future__ import annotations

import pytest
import torch

from dema.errors import ConfigError
from dema.models.mamba import MambaMixer, SelectiveSSM, ssm_path
from dema.scan import compute_paths, numba_available

from tiny_models import garbage_left_padded, random_batch, tiny_policy

pytestmark = pytest.mark.skipif(not numba_available(), reason="numba is not installed")
TOL = {torch.float64: 1e-10, torch.float32: 1e-4}


def _grads(module, x, mask, path, seed=1, scan=""):
    """Output and the gradients of a random linear function of it, through `path` (and `scan`)."""
    module.zero_grad()
    x = x.detach().clone().requires_grad_()
    with compute_paths(scan=scan, ssm=path):
        y = module(x, mask)
    gen = torch.Generator().manual_seed(seed)
    weights = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(y.dtype)
    (y * weights).sum().backward()
    out = {"out": y.detach(), "grad_x": x.grad}
    out.update({f"grad_{name}": p.grad.clone() for name, p in module.named_parameters()})
    return out


def _assert_close(got, want, tol):
    assert got.keys() == want.keys()
    for name, ref in want.items():
        scale = ref.abs().max().item() or 1.0
        err = (got[name].double() - ref.double()).abs().max().item() / scale
        assert err <= tol, f"{name}: relative error {err:.2e} > {tol:.0e}"


def _mask(batch, length):
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[0, : length // 2] = False  # left padding of different lengths
    mask[-1, :1] = False
    return mask


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("kind,sizes", [
    ("mixer", dict(d_model=6, d_state=5, d_conv=4, expand=2, dt_rank=2)),  # Di 12
    ("mixer", dict(d_model=19, d_state=3, d_conv=3, expand=2, dt_rank=1)),  # Di 38: channel blocks, even rest
    ("bare", dict(d_inner=7, d_state=3, d_conv=3, dt_rank=1)),  # no gate, odd Di
    ("bare", dict(d_inner=33, d_state=4, d_conv=4, dt_rank=3)),  # odd Di across blocks
], ids=["mixer12", "mixer38", "bare7", "bare33"])
def test_node_equals_plain_forward(kind, sizes, masked, dtype):
    torch.manual_seed(0)
    module = (MambaMixer(**sizes) if kind == "mixer" else SelectiveSSM(**sizes)).to(dtype)
    width = sizes.get("d_model", sizes.get("d_inner"))
    x = torch.randn(3, 11, width, dtype=dtype)
    x[0, :3] = 100.0  # large values where the first sequence is padded
    mask = _mask(3, 11) if masked else None
    want = _grads(module, x, mask, "ref")
    got = _grads(module, x, mask, "node")
    assert got["out"].dtype == dtype
    _assert_close(got, want, TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("chunk", [4, 1])
def test_node_in_chunks_equals_plain_forward(monkeypatch, chunk, dtype):
    """Long sequences: the node keeps the state at each chunk's start and runs the backward chunk
    by chunk (dema.scan.numba_scan.chunk_steps, forced small here: 11 steps in 3 or 11 chunks)."""
    from dema.scan import numba_scan

    monkeypatch.setattr(numba_scan, "chunk_steps", lambda length, d_state, itemsize: min(chunk, length))
    torch.manual_seed(0)
    module = MambaMixer(d_model=19, d_state=3, d_conv=3, expand=2, dt_rank=1).to(dtype)  # Di 38
    x = torch.randn(3, 11, 19, dtype=dtype)
    mask = _mask(3, 11)
    # the reference with the sequential reference scan, which has no chunks
    _assert_close(_grads(module, x, mask, "node"), _grads(module, x, mask, "ref", scan="ref"), TOL[dtype])


def test_node_is_the_default_and_ref_turns_it_off():
    x = torch.randn(2, 5, 12)
    mixer = MambaMixer(d_model=6, d_state=5, d_conv=4, expand=2, dt_rank=2)
    with compute_paths(scan="", ssm="node"):  # the defaults, whatever the environment says
        assert ssm_path(x) == "node"
        assert "SSMNode" in type(mixer.ssm(x).grad_fn).__name__
        with compute_paths(ssm="ref"):
            assert ssm_path(x) == "ref" and "SSMNode" not in type(mixer.ssm(x).grad_fn).__name__
        with compute_paths(ssm="fused"):  # the node's old name
            assert ssm_path(x) == "node"
        with compute_paths(scan="ref"):  # the node runs the Numba scan: another scan forced means no node
            assert ssm_path(x) == "ref"


def test_unknown_ssm_path_is_a_clear_error():
    with pytest.raises(ConfigError, match="ssm='fast'.*node, ref"):
        with compute_paths(ssm="fast"):
            pass


def test_attention_override_takes_the_plain_forward():
    ssm = SelectiveSSM(d_inner=8, d_state=3, d_conv=4, dt_rank=1).double()
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    seen = []
    ssm.attention_override = lambda s, mask: seen.append(s) or s
    out = ssm(x)
    assert len(seen) == 1
    ssm.attention_override = None
    torch.testing.assert_close(out, ssm(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("model", ["dema", "dema-post"])
def test_policy_loss_and_gradients_equal(model, dtype):
    """A whole DeMa (the preset's Mamba block, and the bare SSM after the up-projection) on a
    left-padded batch: the training loss and every parameter's gradient are the same either way."""
    policy = tiny_policy(model, dtype=dtype).train()
    batch = garbage_left_padded(random_batch(batch_size=3, length=6, dtype=dtype), pad=2)
    grads = {}
    for path in ("ref", "node"):
        policy.zero_grad()
        with compute_paths(scan="", ssm=path):
            loss = policy.loss(batch)
        loss.backward()
        grads[path] = {"loss": loss.detach(), **{n: p.grad.clone() for n, p in policy.named_parameters()
                                                  if p.grad is not None}}
    _assert_close(grads["node"], grads["ref"], TOL[dtype])
