"""mamba-ssm's whole `selective_scan_fn` contract on every path (issue 29).

B and C each time-invariant (dim, dstate), input-dependent (batch, dstate, L) or grouped
(batch, groups, dstate, L); D, z, delta_bias, delta_softplus and return_last_state in every
combination; float32, float16 and bfloat16 inputs (float64 too, to show the paths are exact).
Every fast path is compared with the reference on the same inputs, outputs, final state and the
gradient of every input, at mamba-ssm's own tolerances per dtype (its tests/ops/test_selective_scan.py);
the reference itself is compared with a transcription of mamba-ssm's reference.

The CPU paths (Numba, the pure-PyTorch `torch` node) run the whole grid. The Triton path runs under
its interpreter here, element by element in Python, so it runs a pairwise grid: for each of the
nine (B form, C form) pairs, six rows of the five options in which every pair of option values
appears (all off and all on among them), with the dtypes and lengths rotating.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from dema.scan import (compute_paths, gpu_scan_available, numba_available, selective_scan_fn, selective_scan_numba,
                       selective_scan_ref, selective_scan_torch)
from dema.scan.contract import GROUPED, INPUT_DEPENDENT, TIME_INVARIANT
from test_scan_gpu import device, triton_scan  # noqa: E402, F401  (same folder: the Triton fixture)

FORMS = (TIME_INVARIANT, INPUT_DEPENDENT, GROUPED)
OPTIONS = ("D", "z", "delta_bias", "delta_softplus", "return_last_state")
DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
BATCH, DIM, DSTATE = 2, 6, 4
# Channels per group 2 (B) and 3 (C): the Numba backward runs its two-channel form where every
# pair of channels reads one row of B and C, its one-channel form otherwise; the Triton kernel
# takes blocks of 2 channels, then of 1.
GROUPS = {"B": 3, "C": 2}
LENGTHS = (1, 2, 5, 9, 13)  # 9 and 13: two chunks of the interpreter's 8 steps

CPU_PATHS = {
    "numba": pytest.param(selective_scan_numba, marks=pytest.mark.skipif(not numba_available(),
                                                                         reason="numba is not installed")),
    "torch": selective_scan_torch,
}
CUDA = torch.cuda.is_available()


def length_of(i: int) -> int:
    return LENGTHS[i % len(LENGTHS)]


def make_inputs(b_form: str, c_form: str, itype: torch.dtype, length: int, seed: int) -> dict:
    """As mamba-ssm's test makes them: u, delta, z and a B or C that varies in time in `itype`; A, D,
    delta_bias and a time-invariant B or C (weights) in float32, or float64 with float64 inputs."""
    gen = torch.Generator().manual_seed(seed)
    wtype = torch.float64 if itype == torch.float64 else torch.float32

    def rand(*shape, dtype, normal=True, scale=1.0):
        x = torch.randn(*shape, generator=gen, dtype=torch.float64) if normal else \
            torch.rand(*shape, generator=gen, dtype=torch.float64)
        return (x * scale).to(dtype)

    def operand(form, groups):
        return {TIME_INVARIANT: lambda: rand(DIM, DSTATE, dtype=wtype),
                INPUT_DEPENDENT: lambda: rand(BATCH, DSTATE, length, dtype=itype),
                GROUPED: lambda: rand(BATCH, groups, DSTATE, length, dtype=itype)}[form]()

    return {
        "u": rand(BATCH, DIM, length, dtype=itype),
        "delta": rand(BATCH, DIM, length, dtype=itype, normal=False, scale=0.5),
        "A": rand(DIM, DSTATE, dtype=wtype, normal=False, scale=-0.5),
        "B": operand(b_form, GROUPS["B"]),
        "C": operand(c_form, GROUPS["C"]),
        "D": rand(DIM, dtype=wtype),
        "z": rand(BATCH, DIM, length, dtype=itype),
        "delta_bias": rand(DIM, dtype=wtype, normal=False, scale=0.5),
    }


def run(scan, inputs: dict, options: dict, device="cpu", seed=1, **kwargs) -> dict:
    """Output, final state, and the gradients of a random linear function of both w.r.t. every input."""
    leaves = {k: v.detach().clone().to(device).requires_grad_() for k, v in inputs.items()
              if k in ("u", "delta", "A", "B", "C") or options[k]}
    optional = {k: leaves[k] for k in ("D", "z", "delta_bias") if k in leaves}
    result = scan(leaves["u"], leaves["delta"], leaves["A"], leaves["B"], leaves["C"], **optional,
                  delta_softplus=options["delta_softplus"], return_last_state=options["return_last_state"],
                  **kwargs)
    out, last = result if options["return_last_state"] else (result, None)
    gen = torch.Generator().manual_seed(seed)
    loss = (out.float() * torch.randn(out.shape, generator=gen).to(device)).sum()
    if last is not None:
        loss = loss + (last.float() * torch.randn(last.shape, generator=gen).to(device)).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    tensors = {"out": out, **({"last_state": last} if last is not None else {})}
    tensors.update({f"grad_{k}": g for k, g in zip(leaves, grads)})
    return {k: v.detach().cpu() for k, v in tensors.items()}


def mamba_tolerances(itype, has_z: bool, b_form: str, c_form: str) -> dict:
    """(rtol, atol) per tensor, as mamba-ssm's test_selective_scan sets them."""
    rtol, atol = (6e-4, 2e-3) if itype == torch.float32 else (3e-3, 5e-3)
    if itype == torch.bfloat16:
        rtol, atol = 3e-2, 5e-2
    rtolw, atolw = 1e-3, 1e-3
    if has_z:  # "If we have z, the errors on the weights seem higher"
        rtolw, atolw = max(rtolw, rtol), max(atolw, atol)
    return {"out": (rtol, atol), "last_state": (rtol, atol), "grad_u": (2 * rtol, 2 * atol),
            "grad_delta": (5 * rtol, 10 * atol), "grad_A": (rtolw, 5 * atolw),
            "grad_B": (rtolw, atolw) if b_form == TIME_INVARIANT else (rtol, atol),
            "grad_C": (rtolw, atolw) if c_form == TIME_INVARIANT else (rtol, atol),
            "grad_D": (rtolw, atolw), "grad_z": (rtolw, atolw), "grad_delta_bias": (rtolw, atolw)}


def mismatches(got: dict, want: dict, itype, options: dict, b_form: str, c_form: str) -> list[str]:
    """What differs: dtypes and shapes exactly; values at mamba-ssm's tolerances, or for float64
    inputs to 1e-10 of the reference's largest magnitude (the paths are exact up to rounding)."""
    if got.keys() != want.keys():
        return [f"returned {sorted(got)} instead of {sorted(want)}"]
    tolerances = mamba_tolerances(itype, options["z"], b_form, c_form)
    problems = []
    for name, ref in want.items():
        value = got[name]
        if value.dtype != ref.dtype or value.shape != ref.shape:
            problems.append(f"{name}: {value.dtype} {tuple(value.shape)}, reference {ref.dtype} {tuple(ref.shape)}")
        elif itype == torch.float64:
            err = (value - ref).abs().max().item() / (ref.abs().max().item() or 1.0)
            if err > 1e-10:
                problems.append(f"{name}: relative error {err:.1e}")
        elif not torch.allclose(value.float(), ref.float(), *tolerances[name]):
            problems.append(f"{name}: max error {(value.float() - ref.float()).abs().max().item():.1e} "
                            f"beyond (rtol, atol) {tolerances[name]}")
    return problems


def describe(options: dict, itype, length: int) -> str:
    on = [k for k, v in options.items() if v] or ["no options"]
    return f"{str(itype).removeprefix('torch.')}, L {length}, {'+'.join(on)}"


def _pairwise_rows() -> list[dict]:
    """Six rows of the five binary options that hold every pair of values of every two options:
    option i is on in the rows of the i-th 3-subset of {1..5} that contains 5. Two distinct 3-subsets
    of the six rows {0..5}, both without row 0, share 1 or 2 rows, so each pair of options is
    (on, on), (on, off), (off, on) and (off, off) somewhere; row 0 is all off, row 5 all on."""
    columns = [set(c) for c in itertools.combinations(range(1, 6), 3) if 5 in c][:len(OPTIONS)]
    return [{name: row in column for name, column in zip(OPTIONS, columns)} for row in range(6)]


PAIRWISE = _pairwise_rows()
ALL_OPTIONS = [dict(zip(OPTIONS, values)) for values in itertools.product((False, True), repeat=len(OPTIONS))]


def test_pairwise_rows_cover_every_pair():
    for a, b in itertools.combinations(OPTIONS, 2):
        assert {(row[a], row[b]) for row in PAIRWISE} == {(False, False), (False, True), (True, False), (True, True)}
    assert not any(PAIRWISE[0].values()) and all(PAIRWISE[-1].values())


# --- the reference against mamba-ssm's ----------------------------------------------------------


def mamba_ssm_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                  return_last_state=False):
    """mamba-ssm's selective_scan_ref (mamba_ssm/ops/selective_scan_interface.py, Apache-2.0), its
    real-A branch transcribed (einops' repeat spelled out): the oracle for dema's reference. Note
    the groups: B (B, G, N, L) is repeated to (B, (G H), N, L), so channel d reads group d // H."""
    def float_(t):  # mamba-ssm's .float(); float64 kept, so that the comparison can be exact
        return t if t.dtype == torch.float64 else t.float()

    dtype_in = u.dtype
    u, delta = float_(u), float_(delta)
    if delta_bias is not None:
        delta = delta + float_(delta_bias[..., None])
    if delta_softplus:
        delta = torch.nn.functional.softplus(delta)
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    B, C = float_(B), float_(C)
    x = A.new_zeros((batch, dim, dstate))
    ys = []
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    def repeat(X, H):  # einops.repeat(X, "B G N L -> B (G H) N L", H=H), without einops
        return X.unsqueeze(2).expand(-1, -1, H, -1, -1).flatten(1, 2)

    if B.dim() == 2:
        deltaB_u = torch.einsum("bdl,dn,bdl->bdln", delta, B, u)
    elif B.dim() == 3:
        deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    else:
        B = repeat(B, dim // B.shape[1])
        deltaB_u = torch.einsum("bdl,bdnl,bdl->bdln", delta, B, u)
    if C.dim() == 4:
        C = repeat(C, dim // C.shape[1])
    for i in range(u.shape[2]):
        x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
        if C.dim() == 2:
            y = torch.einsum("bdn,dn->bd", x, C)
        elif C.dim() == 3:
            y = torch.einsum("bdn,bn->bd", x, C[:, :, i])
        else:
            y = torch.einsum("bdn,bdn->bd", x, C[:, :, :, i])
        ys.append(y)
    y = torch.stack(ys, dim=2)
    out = y if D is None else y + u * D[:, None]
    if z is not None:
        out = out * torch.nn.functional.silu(z)
    out = out.to(dtype=dtype_in)
    return out if not return_last_state else (out, x)


@pytest.mark.parametrize("c_form", FORMS)
@pytest.mark.parametrize("b_form", FORMS)
def test_reference_is_mamba_ssms(b_form, c_form):
    """dema's reference against mamba-ssm's, float64, all options off and on, every gradient."""
    for i, options in enumerate([ALL_OPTIONS[0], ALL_OPTIONS[-1]]):
        inputs = make_inputs(b_form, c_form, torch.float64, length_of(i + 2), seed=i)
        want = run(mamba_ssm_ref, {k: v.double() for k, v in inputs.items()}, options)
        got = run(selective_scan_ref, inputs, options)
        assert not mismatches(got, want, torch.float64, options, b_form, c_form), describe(options, torch.float64, 0)


# --- every path against the reference -------------------------------------------------------------


@pytest.mark.parametrize("itype", DTYPES, ids=lambda t: str(t).removeprefix("torch."))
@pytest.mark.parametrize("c_form", FORMS)
@pytest.mark.parametrize("b_form", FORMS)
@pytest.mark.parametrize("scan", CPU_PATHS.values(), ids=CPU_PATHS.keys())
def test_cpu_paths_match_the_reference_over_the_whole_grid(scan, b_form, c_form, itype):
    """All 32 combinations of the options, each at one of the LENGTHS."""
    failures = []
    for i, options in enumerate(ALL_OPTIONS):
        inputs = make_inputs(b_form, c_form, itype, length_of(i), seed=i)
        want = run(selective_scan_ref, inputs, options)
        got = run(scan, inputs, options)
        failures += [f"{describe(options, itype, length_of(i))}: {p}"
                     for p in mismatches(got, want, itype, options, b_form, c_form)]
    assert not failures, "\n".join(failures)




@pytest.mark.parametrize("c_form", FORMS)
@pytest.mark.parametrize("b_form", FORMS)
def test_triton_matches_the_reference_over_a_pairwise_grid(device, b_form, c_form):
    failures = []
    offset = FORMS.index(b_form) + FORMS.index(c_form)  # so that each row meets every dtype somewhere
    for r, options in enumerate(PAIRWISE):
        itype, length = DTYPES[(r + offset) % len(DTYPES)], length_of(r + offset)
        inputs = make_inputs(b_form, c_form, itype, length, seed=r)
        want = run(selective_scan_ref, inputs, options)
        got = run(triton_scan, inputs, options, device)
        failures += [f"{describe(options, itype, length)}: {p}"
                     for p in mismatches(got, want, itype, options, b_form, c_form)]
    assert not failures, "\n".join(failures)


def test_selective_scan_fn_takes_every_form():
    """The dispatcher passes each form to its path (Numba here when installed) unchanged."""
    options = ALL_OPTIONS[-1]
    for b_form, c_form in [(TIME_INVARIANT, GROUPED), (GROUPED, TIME_INVARIANT)]:
        inputs = make_inputs(b_form, c_form, torch.float32, 7, seed=3)
        want = run(selective_scan_ref, inputs, options)
        with compute_paths(scan=""):  # chosen per call, whatever the environment says
            got = run(selective_scan_fn, inputs, options)
        assert not mismatches(got, want, torch.float32, options, b_form, c_form)


# --- what is refused ----------------------------------------------------------------------------


def _paths(device_ok: bool):
    paths = {"ref": selective_scan_ref, "torch": selective_scan_torch, "fn": selective_scan_fn}
    if numba_available():
        paths["numba"] = selective_scan_numba
    if device_ok:
        paths["triton"] = triton_scan
    return paths


def _bad_shapes():
    """(name, what to change in a well-formed input set, a piece of the message)."""
    b, d, length, n = BATCH, DIM, 5, DSTATE
    return [
        ("groups-not-dividing", {"B": torch.randn(b, 4, n, length)}, "B has 4 groups, which do not divide dim 6"),
        ("B-wrong-length", {"B": torch.randn(b, n, length + 1)}, "B (2, 4, 6) is none of"),
        ("C-transposed", {"C": torch.randn(b, length, n)}, "C (2, 5, 4) is none of"),
        ("C-time-invariant-transposed", {"C": torch.randn(n, d)}, "C (4, 6) is none of"),
        ("B-5d", {"B": torch.randn(b, 1, 1, n, length)}, "B (2, 1, 1, 4, 5) is none of"),
        ("A-rows", {"A": -torch.rand(d + 1, n)}, "A has 7 rows for dim 6"),
        ("D-shape", {"D": torch.randn(d, 1)}, "D must be (dim,)"),
        ("z-shape", {"z": torch.randn(b, d, length + 1)}, "z must have u's shape"),
        ("u-2d", {"u": torch.randn(d, length)}, "u must be (batch, dim, L)"),
        ("integer-delta", {"delta": torch.ones(b, d, length, dtype=torch.int64)}, "delta has dtype torch.int64"),
    ]


@pytest.mark.parametrize("name, change, message", _bad_shapes(), ids=[c[0] for c in _bad_shapes()])
def test_shapes_that_fit_no_form_are_one_value_error_on_every_path(monkeypatch, name, change, message):
    device_ok = gpu_scan_available() and not CUDA  # CPU tensors: the interpreter
    if device_ok:
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    inputs = {**make_inputs(INPUT_DEPENDENT, INPUT_DEPENDENT, torch.float32, 5, seed=0), **change}
    for path, scan in _paths(device_ok).items():
        with pytest.raises(ValueError) as caught:
            scan(*(inputs[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")), True)
        text = str(caught.value)
        assert message in text and "Accepted:" in text and "(batch, groups, dstate, L) grouped" in text, (path, text)
        assert f"u {tuple(inputs['u'].shape)}" in text, (path, text)  # every shape is named


def test_complex_A_is_refused_with_one_clear_error(monkeypatch):
    device_ok = gpu_scan_available() and not CUDA
    if device_ok:
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    inputs = make_inputs(INPUT_DEPENDENT, INPUT_DEPENDENT, torch.float32, 5, seed=0)
    inputs["A"] = torch.complex(inputs["A"], torch.rand_like(inputs["A"]))
    for scan in _paths(device_ok).values():  # CPU tensors: never mamba-ssm's kernel, which takes a complex A
        with pytest.raises(ValueError, match="A complex .*complex mode .* is not supported: use a real A"):
            scan(*(inputs[k] for k in ("u", "delta", "A", "B", "C")))


def test_triton_blocks_must_fit_the_groups(device):
    """Each Triton program reads one group's B and C: block sizes follow the groups' size."""
    from dema.scan.triton_scan import block_sizes

    assert block_sizes(64, 60, 16, tile=4096, chunk=32)[0] == 8
    assert block_sizes(64, 60, 16, tile=4096, chunk=32, group_size=12)[0] == 4  # the largest power of 2 dividing 12
    assert block_sizes(64, 60, 16, tile=4096, chunk=32, group_size=3)[0] == 1
    inputs = make_inputs(GROUPED, INPUT_DEPENDENT, torch.float32, 5, seed=0)  # B: 2 channels per group
    with pytest.raises(ValueError, match="4 channels per program do not divide the groups' 2 channels"):
        triton_scan(*(inputs[k].to(device) for k in ("u", "delta", "A", "B", "C")), blocks=(4, 4, 8))


# --- dtypes and the scan from a state -----------------------------------------------------------


@pytest.mark.parametrize("itype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
def test_half_inputs_keep_their_dtype_and_the_state_is_float32(itype):
    """As mamba-ssm: the output in u's dtype, the last state in float32, each gradient in its input's dtype."""
    inputs = make_inputs(GROUPED, TIME_INVARIANT, itype, 5, seed=2)
    for scan in _paths(False).values():
        got = run(scan, inputs, ALL_OPTIONS[-1])
        assert got["out"].dtype == itype and got["last_state"].dtype == torch.float32
        assert got["grad_u"].dtype == itype and got["grad_C"].dtype == torch.float32 and got["grad_B"].dtype == itype


@pytest.mark.parametrize("b_form, c_form", [(TIME_INVARIANT, GROUPED), (GROUPED, TIME_INVARIANT)])
def test_scan_from_a_state_takes_every_form(b_form, c_form):
    """RNN-like acting (dema.scan.stateful): chunk after chunk, from the last state, equals one scan."""
    from dema.scan.stateful import selective_scan_with_state

    x = make_inputs(b_form, c_form, torch.float64, 9, seed=5)
    args = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
    whole, last = selective_scan_ref(*(x[k] for k in args), True, True)
    state, outs = None, []
    for lo, hi in [(0, 4), (4, 9)]:
        part = {k: v[..., lo:hi] if k in ("u", "delta", "z") or (v.dim() > 2 and k in "BC") else v
                for k, v in x.items()}
        out, state = selective_scan_with_state(*(part[k] for k in args), True, initial_state=state)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, dim=-1), whole, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(state, last, rtol=1e-10, atol=1e-10)


def test_the_documented_mamba_block_runs(capsys, monkeypatch):
    """docs/PERFORMANCE.md, "Using dema's scan in your own Mamba": its example runs as printed."""
    import re
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs" / "PERFORMANCE.md"
    if not docs.exists():
        pytest.skip("no docs/ beside the tests (an installed copy)")
    section = docs.read_text().split("## Using dema's scan in your own Mamba", 1)[1].split("\n## ", 1)[0]
    example = re.findall(r"```python\n(.*?)```", section, re.S)[-1]
    with compute_paths(scan=""):  # chosen per call, whatever the environment says
        exec(compile(example, str(docs), "exec"), {"__name__": "docs_example"})
    expected = "numba" if numba_available() else "ref"
    assert capsys.readouterr().out.split()[0] == expected
