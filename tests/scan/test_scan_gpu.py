"""The Triton (GPU) selective scan against the sequential reference: outputs and all gradients.

On a machine with CUDA the kernels run on the GPU; elsewhere under Triton's interpreter
(TRITON_INTERPRET=1, set per test), which runs each scan element by element in Python, so the
shapes here are small. Triton comes with the `test` extra (through `gpu`, Linux only); without it
the kernel tests skip, as the Numba kernel's do without numba, and the dispatch errors are still
checked.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch

import dema.scan
from dema.errors import ConfigError
from dema.scan import compute_paths, gpu_scan_available, scan_backend, selective_scan_fn, selective_scan_ref
from dema.scan.stateful import selective_scan_with_state

from test_scan_variants import TOL, assert_close_to_reference, make_inputs  # noqa: E402  (same folder)

needs_triton = pytest.mark.skipif(not gpu_scan_available(), reason='triton is not installed: pip install -e ".[gpu]"')

CUDA = torch.cuda.is_available()
SHAPES = [(2, 3, 7, 4), (1, 1, 1, 1), (3, 5, 1, 6), (2, 4, 9, 1), (1, 2, 33, 17)]
if CUDA:
    SHAPES += [(4, 16, 20, 8), (2, 64, 60, 64), (2, 8, 300, 16)]


@pytest.fixture
def device(monkeypatch):
    if not gpu_scan_available():
        pytest.skip('triton is not installed: pip install -e ".[gpu]"')
    if CUDA:
        return "cuda"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    return "cpu"


def triton_scan(*args, **kwargs):
    from dema.scan.triton_scan import selective_scan_triton

    return selective_scan_triton(*args, **kwargs)


def run_on(scan, inputs, device, *, softplus=True, last_state=True, use_optional=True, seed=1, **kwargs):
    """Like test_scan_variants.run, on `device`; results come back to the CPU."""
    leaves = {k: v.detach().clone().to(device).requires_grad_() for k, v in inputs.items()}
    optional = {k: leaves[k] for k in ("D", "z", "delta_bias")} if use_optional else {}
    result = scan(leaves["u"], leaves["delta"], leaves["A"], leaves["B"], leaves["C"], **optional,
                  delta_softplus=softplus, return_last_state=last_state, **kwargs)
    out, last = result if last_state else (result, None)
    gen = torch.Generator().manual_seed(seed)
    weights = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.dtype).to(device)
    loss = (out * weights).sum()
    if last is not None:
        loss = loss + (last * torch.randn(last.shape, generator=gen, dtype=torch.float64).to(last.dtype)
                       .to(device)).sum()
    used = [k for k in leaves if k in ("u", "delta", "A", "B", "C") or k in optional]
    grads = torch.autograd.grad(loss, [leaves[k] for k in used])
    tensors = {"out": out, **({"last_state": last} if last is not None else {})}
    tensors.update({f"grad_{k}": g for k, g in zip(used, grads)})
    return {k: v.detach().cpu() for k, v in tensors.items()}


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_matches_reference(device, shape, dtype):
    inputs = make_inputs(*shape, dtype=dtype, seed=sum(shape))
    want = run_on(selective_scan_ref, {k: v.double() for k, v in inputs.items()}, "cpu")
    got = run_on(triton_scan, inputs, device)
    assert got["out"].dtype == dtype
    assert_close_to_reference(got, want, TOL[dtype])


@pytest.mark.parametrize("softplus", [False, True], ids=["raw-delta", "softplus"])
@pytest.mark.parametrize("optional", [False, True], ids=["bare", "D-z-bias"])
def test_options_and_last_state(device, softplus, optional):
    inputs = make_inputs(2, 5, 11, 7, torch.float64, seed=3)
    if not softplus:  # a raw delta must be positive to be a step size
        inputs["delta"] = inputs["delta"].abs() * 0.2
        inputs["delta_bias"] = inputs["delta_bias"].abs() * 0.01
    kwargs = dict(softplus=softplus, use_optional=optional)
    want = run_on(selective_scan_ref, inputs, "cpu", **kwargs)
    assert_close_to_reference(run_on(triton_scan, inputs, device, **kwargs), want, TOL[torch.float64])


@pytest.mark.parametrize("blocks", [(1, 8, 1), (4, 8, 4), (8, 16, 8)], ids=lambda b: "x".join(map(str, b)))
def test_chunks_and_channel_blocks(device, blocks):
    """Many chunks (the forward's carried state, the backward's saved starts and carried adjoint) and
    channel blocks that do not divide d_inner (masked rows)."""
    inputs = make_inputs(2, 5, 11, 7, torch.float64, seed=8)
    want = run_on(selective_scan_ref, inputs, "cpu")
    assert_close_to_reference(run_on(triton_scan, inputs, device, blocks=blocks), want, TOL[torch.float64])


def test_half_inputs_are_computed_in_float32(device):
    inputs = make_inputs(2, 3, 6, 4, torch.float32, seed=9)
    inputs.update({k: inputs[k].half() for k in ("u", "delta", "z")})
    leaves = {k: v.to(device) for k, v in inputs.items()}
    out = triton_scan(*(leaves[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")), True)
    assert out.dtype == torch.float16
    want = selective_scan_ref(*({k: v.double() for k, v in inputs.items()}[k]
                                for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")), True)
    torch.testing.assert_close(out.cpu().double(), want, rtol=1e-2, atol=1e-2 * want.abs().max().item())


@pytest.mark.parametrize("cuts", [(3,), (1, 2, 5)], ids=["halves", "uneven"])
def test_scan_from_state(device, cuts):
    """Inference from a given state (RNN-like acting on a GPU): chunk after chunk equals one scan."""
    from dema.scan.triton_scan import selective_scan_triton_from_state

    x = make_inputs(2, 5, 12, 6, torch.float64, seed=7)
    whole, last = selective_scan_ref(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], x["z"], x["delta_bias"],
                                     delta_softplus=True, return_last_state=True)
    bounds = [0, *cuts, 12]
    state, outs = None, []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        part = {k: (v[..., lo:hi] if v.dim() == 3 and k != "A" else v).to(device) for k, v in x.items()}
        out, state = selective_scan_triton_from_state(part["u"], part["delta"], part["A"], part["B"], part["C"],
                                                      part["D"], part["z"], part["delta_bias"], True,
                                                      initial_state=state)
        outs.append(out.cpu())
    torch.testing.assert_close(torch.cat(outs, dim=-1), whole, rtol=1e-10, atol=1e-10 * whole.abs().max().item())
    torch.testing.assert_close(state.cpu(), last, rtol=1e-10, atol=1e-10 * last.abs().max().item())


@needs_triton
@pytest.mark.skipif(not CUDA, reason="the stateful dispatch takes the Triton kernel on CUDA tensors only")
def test_stateful_dispatch_on_cuda():
    x = make_inputs(2, 5, 12, 6, torch.float32, seed=7)
    want = selective_scan_with_state(*(x[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")), True)
    got = selective_scan_with_state(*(x[k].cuda() for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")),
                                    True)
    for g, w in zip(got, want):
        torch.testing.assert_close(g.cpu(), w, rtol=1e-4, atol=1e-4 * w.abs().max().item())


@pytest.mark.parametrize("name", ["u", "delta", "A", "B", "C"])
def test_nan_inputs_give_nan_outputs(device, name):
    inputs = make_inputs(2, 3, 6, 4, torch.float32, seed=6)
    inputs[name].view(-1)[0] = float("nan")
    leaves = [inputs[k].to(device) for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]
    assert triton_scan(*leaves, True).isnan().any()


# --- dispatch --------------------------------------------------------------------------------


def test_dema_scan_gpu_is_used_by_selective_scan_fn(device):
    inputs = make_inputs(2, 3, 5, 4, torch.float64, seed=5)
    want = run_on(selective_scan_ref, inputs, "cpu")
    with compute_paths(scan="gpu"):
        assert scan_backend(inputs["u"].to(device)) == "gpu"
        got = run_on(selective_scan_fn, inputs, device)
    assert_close_to_reference(got, want, 1e-10)


def test_the_scan_from_a_state_takes_the_forced_scan(device, monkeypatch):
    """dema.scan.stateful follows the compute paths as selective_scan_fn does (it ignored DEMA_SCAN
    before issue 28): forced to the Triton kernel, it runs the Triton kernel, and equals the reference."""
    from dema.scan import stateful, triton_scan

    x = make_inputs(2, 3, 5, 4, torch.float64, seed=5)
    args = [x[k].to(device) for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]
    calls = []
    real = triton_scan.selective_scan_triton_from_state
    monkeypatch.setattr(triton_scan, "selective_scan_triton_from_state", lambda *a: calls.append(1) or real(*a))
    with compute_paths(scan="gpu"):
        assert stateful.stateful_backend(args[0]) == "gpu"
        out, last = stateful.selective_scan_with_state(*args, True)
    assert calls == [1]
    want, want_last = selective_scan_ref(*(x[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")),
                                         True, True)
    torch.testing.assert_close(out.cpu(), want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(last.cpu(), want_last, rtol=1e-10, atol=1e-10)


CUDA_LIKE = types.SimpleNamespace(is_cuda=True)  # scan_backend only asks where the tensor lives


@needs_triton
def test_cuda_tensors_take_the_triton_kernel_without_mamba_ssm(monkeypatch):
    monkeypatch.setattr(dema.scan, "_mamba_ssm_scan", None)
    with compute_paths(scan=""):  # chosen per call, whatever the environment says
        assert scan_backend(CUDA_LIKE) == "gpu"
        monkeypatch.setattr(dema.scan, "_gpu_module", lambda: None)
        assert scan_backend(CUDA_LIKE) == "torch"  # no triton: the pure-PyTorch node


def test_bad_dema_scan_values_are_clear_errors(monkeypatch):
    from dema.scan.paths import ComputePaths

    u = torch.zeros(1, 2, 3)
    message = r"DEMA_SCAN='cuda-please' is not a scan.*numba, torch, ref, gpu.*dema\[gpu\]"
    with pytest.raises(ConfigError, match=message):
        ComputePaths.from_environment({"DEMA_SCAN": "cuda-please"})
    with compute_paths(scan="numba"):
        with pytest.raises(ConfigError, match="CPU kernel and the tensors are on CUDA.*DEMA_SCAN=gpu"):
            scan_backend(CUDA_LIKE)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with compute_paths(scan="gpu"):
        if gpu_scan_available():  # installed, but these are CPU tensors and no interpreter was asked for
            with pytest.raises(ConfigError, match="TRITON_INTERPRET=1"):
                scan_backend(u)
        monkeypatch.setattr(dema.scan, "_gpu_module", lambda: None)
        with pytest.raises(ConfigError, match=r"needs Triton: pip install \"dema\[gpu\]\""):
            scan_backend(u)
    with pytest.raises(ConfigError, match="needs Triton"):
        dema.scan.selective_scan_gpu(u, u, torch.zeros(2, 1), torch.zeros(1, 1, 3), torch.zeros(1, 1, 3))


@needs_triton
@pytest.mark.skipif(CUDA, reason="the interpreter's import order matters on the CPU only")
def test_interpreter_works_when_triton_was_imported_first():
    """torch's FlopCounterMode imports triton; TRITON_INTERPRET=1 set only afterwards (as in a
    test session) must still run the kernels under the interpreter."""
    import subprocess

    code = ("import os, sys, torch\n"
            "from torch.utils.flop_counter import FlopCounterMode\n"
            "assert 'triton' in sys.modules\n"
            "os.environ['TRITON_INTERPRET'] = '1'\n"
            "from dema.scan.triton_scan import selective_scan_triton\n"
            "x = torch.randn(1, 2, 3, requires_grad=True)\n"
            "out = selective_scan_triton(x, x, -torch.ones(2, 2), torch.ones(1, 2, 3), torch.ones(1, 2, 3))\n"
            "out.sum().backward()\n"
            "print('ok', bool(torch.isfinite(x.grad).all()))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ok True" in result.stdout, result.stderr[-2000:]


COMPILE = """
import sys
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, compile
from dema.scan import triton_scan

fwd, bwd = triton_scan._kernels(False)
flags = ("HAS_D", "HAS_Z", "HAS_BIAS", "SOFTPLUS", "HAS_H0", "SAVE_CKPT", "B_CONST", "C_CONST", "BD", "BN", "CL")
ints = ("Di", "L", "N", "n_chunks", "n_dblk", "GB", "HB", "GC", "HC")
# the preset, a long sequence, a small odd shape (B and C input-dependent or grouped), and the
# preset with a time-invariant B and C
for shape, const in [((128, 60, 64), False), ((128, 3000, 16), False), ((5, 7, 3), False), ((128, 60, 64), True)]:
    bd, bn, cl = triton_scan.block_sizes(*shape)
    values = dict(HAS_D=True, HAS_Z=True, HAS_BIAS=True, SOFTPLUS=True, HAS_H0=False, SAVE_CKPT=True,
                  B_CONST=const, C_CONST=const, BD=bd, BN=bn, CL=cl)
    for kernel in (fwd, bwd):
        signature = {name: "constexpr" if name in flags else
                     "i32" if name in ints else "*fp32" for name in kernel.arg_names}
        constexprs = {name: values[name] for name in kernel.arg_names if name in flags}
        compiled = compile(ASTSource(fn=kernel, signature=signature, constexprs=constexprs),
                           target=GPUTarget("cuda", 90, 32), options={"num_warps": triton_scan.WARPS})
        assert compiled.asm.get("cubin"), (shape, kernel)
print("compiled")
"""


@needs_triton
def test_kernels_compile_for_hopper_without_a_gpu():
    """The interpreter does not compile: Triton's own compiler must accept the kernels too. Both are
    compiled to machine code for sm_90 (H100/H200) at the block sizes of the preset, of a long
    sequence and of a small odd shape, and of the preset with a time-invariant B and C, with the
    tools in Triton's wheel; no GPU needed. In a fresh
    process: Triton cannot compile for a GPU once the interpreter's kind of triton was imported."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", COMPILE], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0 and "compiled" in result.stdout, result.stderr[-3000:]
