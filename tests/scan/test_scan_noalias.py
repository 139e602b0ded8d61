"""The `noalias` kernels (dema.scan.numba_noalias): the flag reaches LLVM, and every call the scan and
the SSM node make keeps the contract that lets LLVM assume it: no array a kernel writes shares memory
with another of its array arguments that the kernel accesses."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from dema.scan import compute_paths, numba_available

from test_scan_variants import make_inputs, run  # noqa: E402  (same folder)

pytestmark = pytest.mark.skipif(not numba_available(), reason="numba is not installed")


def _noalias_arguments(kernel) -> list[str]:
    """The Python-level arguments (LLVM `%arg.<name>.<field>`) that a freshly compiled one-signature
    kernel's `define` line marks noalias."""
    (ir,) = kernel.inspect_llvm().values()
    line = next(line for line in ir.splitlines() if line.startswith("define") and "add_into" in line)
    return re.findall(r"noalias[^,%]*%(arg\.\w+\.\d+)", line)


def test_the_pipeline_puts_noalias_on_the_array_arguments():
    from numba import njit

    from dema.scan.numba_noalias import NoAliasCompiler

    def add_into(x, out):
        for i in range(x.shape[0]):
            out[i] += x[i]

    plain = njit(fastmath=True)(add_into)
    marked = njit(fastmath=True, pipeline_class=NoAliasCompiler)(add_into)
    x = np.arange(4.0)
    for kernel in (plain, marked):
        out = np.ones(4)
        kernel(x, out)
        assert out.tolist() == [1.0, 2.0, 3.0, 4.0]  # the same function either way
    assert _noalias_arguments(plain) == []  # Numba marks only its return and exception slots
    assert {"arg.x.4", "arg.out.4"} <= set(_noalias_arguments(marked))  # field 4: the array's data


# (kernel name) -> (positions of its batched arguments that it writes, the one it reads only when a
# flag is set: (argument position, position of the flag among the shared arguments, value that reads it))
WRITES = {
    "_forward_kernel": ({6, 7, 8}, (5, 3, True)),  # out, last, starts; h0 read only with has_h0
    "_backward_kernel": (set(range(10, 19)), None),  # du ... grad_first; h_before is read only when first > 0
    "_conv_silu_forward": ({2}, None),  # u
    "_conv_silu_backward": ({3, 4, 5}, None),  # dxz, dW_part, dbias_part
}


def _checked(original, calls):
    """`_over_batch_slices` that first checks the call against the contract."""

    def over_batch_slices(kernel, shared, batched):
        name = kernel.py_func.__name__
        assert name in WRITES, f"{name}: add the arguments it writes to WRITES"
        written, conditional = WRITES[name]
        accessed = set(range(len(batched)))
        if conditional is not None and shared[conditional[1]] != conditional[2]:
            accessed.discard(conditional[0])
        if name == "_backward_kernel" and shared[5] == 0:  # first == 0: no state before the chunk
            accessed.discard(8)
        for w in written:
            for other in accessed - {w}:
                assert not np.may_share_memory(batched[w], batched[other]), (
                    f"{name}: written argument {w} shares memory with argument {other}")
        calls.append(name)
        return original(kernel, shared, batched)

    return over_batch_slices


@pytest.fixture
def contract(monkeypatch):
    """Every kernel call through the scan or the SSM node is checked; yields the names called."""
    from dema.scan import numba_scan, numba_ssm

    calls = []
    monkeypatch.setattr(numba_scan, "_over_batch_slices", _checked(numba_scan._over_batch_slices, calls))
    monkeypatch.setattr(numba_ssm, "_over_batch_slices", _checked(numba_ssm._over_batch_slices, calls))
    return calls


@pytest.mark.parametrize("use_optional", [True, False], ids=["D-z-bias", "bare"])
@pytest.mark.parametrize("chunk", [None, 3])
def test_the_scan_keeps_the_contract(monkeypatch, contract, use_optional, chunk):
    from dema.scan import numba_scan

    if chunk:  # several chunks: the backward's carries and kept states change hands
        monkeypatch.setattr(numba_scan, "chunk_steps", lambda length, d_state, itemsize: chunk)
    inputs = make_inputs(2, 6, 10, 3, torch.float64)
    run(numba_scan.selective_scan_numba, inputs, softplus=use_optional, last_state=True, use_optional=use_optional)
    assert contract.count("_forward_kernel") == 1 and contract.count("_backward_kernel") == (4 if chunk else 1)
    with torch.no_grad():  # inference from a state: h0 is read
        numba_scan.selective_scan_numba_from_state(inputs["u"], inputs["delta"], inputs["A"], inputs["B"],
                                                   inputs["C"], initial_state=torch.randn(2, 6, 3, dtype=torch.float64))
    assert contract.count("_forward_kernel") == 2


@pytest.mark.parametrize("gated", [True, False], ids=["mixer", "bare"])
def test_the_ssm_node_keeps_the_contract(monkeypatch, contract, gated):
    from dema.models.mamba import MambaMixer, SelectiveSSM
    from dema.scan import numba_scan

    monkeypatch.setattr(numba_scan, "chunk_steps", lambda length, d_state, itemsize: 4)
    torch.manual_seed(0)
    module = (MambaMixer(d_model=6, d_state=3, d_conv=3, expand=2, dt_rank=1) if gated
              else SelectiveSSM(d_inner=7, d_state=3, d_conv=3, dt_rank=1)).double()
    x = torch.randn(2, 9, 6 if gated else 7, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[0, :3] = False
    with compute_paths(scan="", ssm="node"):
        module(x, mask).sum().backward()
    assert sorted(set(contract)) == ["_backward_kernel", "_conv_silu_backward", "_conv_silu_forward", "_forward_kernel"]
