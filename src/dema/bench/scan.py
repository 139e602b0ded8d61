"""`dema bench scan`: the selective scan alone, every variant, against its floor.

Variants: our Numba kernel (the CPU default), the pure-PyTorch `torch` node (`fused` before issue
28), the sequential reference, and mambapy's parallel (Blelloch) scan when mambapy is installed
(`pip install dema[bench]`; adapted below to mamba-ssm's signature, only here, never a dependency
of the models).
Each on each form of B and C (`FORMS`; mambapy on the input-dependent one only): the iteration
space and the floor are the same for all three.

The floor. Per element of the (B, Di, L, N) iteration space the forward does
    a = exp(delta A)                  1 exp  (+1 multiply for delta A)
    h = a h + (delta u) B             1 multiply + 1 FMA
    y += C h                          1 FMA
i.e. 1 exp and 5 flops; the backward recomputes the forward (1 exp, 3 flops) and runs the adjoint
    G = carry + C gy; dC += gy h; dB += (delta u) G; <G, B>; t = G h_prev a; dA += delta t;
    <t, A>; carry = a G                                   about 15 flops
so one forward + backward is 2 exp + ~23 flops per element. Our exp is a range reduction and a
degree-7 (float32) polynomial: ~12 vector instructions. Counting instructions per element
(vector width 16 in float32 with AVX-512): forward ~17, backward ~45. The bytes that must move are
only the inputs and outputs, (B Di L) x 4 tensors + (B L N) x 4 + (Di N) x 2, a few MB: the scan is
compute bound, and the floor we report is the instruction count at one 16-wide vector instruction
per cycle per core (Zen 4 issues two 256-bit halves per cycle; `--ghz` sets the clock).
"""

from __future__ import annotations

import math

import torch

from dema.bench.timing import machine_info, measure_interleaved, peak_memory_mb
from dema.errors import ConfigError
from dema.scan import numba_available, selective_scan_numba, selective_scan_ref, selective_scan_torch
from dema.scan.contract import GROUPED, INPUT_DEPENDENT, TIME_INVARIANT

FWD_FLOPS, BWD_FLOPS, EXP_INSTRUCTIONS = 5, 18, 12
FWD_VECTOR_OPS = FWD_FLOPS + EXP_INSTRUCTIONS  # per element: 17
BWD_VECTOR_OPS = 3 + EXP_INSTRUCTIONS + 15 + 15  # recompute + adjoint flops + loads/stores: ~45


def selective_scan_mambapy(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                           return_last_state=False):
    """mambapy's parallel scan (its `selective_scan`) behind mamba-ssm's signature."""
    from mambapy.pscan import pscan

    from dema.scan.reference import apply_skip_and_gate, discretize_delta

    delta = discretize_delta(delta, delta_bias, delta_softplus).transpose(1, 2)  # (B, Di, L) -> (B, L, Di)
    x = u.transpose(1, 2)
    Bl, Cl = B.transpose(1, 2), C.transpose(1, 2)  # (B, N, L) -> (B, L, N)
    delta_a = torch.exp(delta.unsqueeze(-1) * A)  # (B, L, Di, N)
    bx = (delta.unsqueeze(-1) * Bl.unsqueeze(2)) * x.unsqueeze(-1)  # (B, L, Di, N)
    hs = pscan(delta_a, bx)
    y = (hs @ Cl.unsqueeze(-1)).squeeze(3).transpose(1, 2)  # (B, L, Di, N) @ (B, L, N, 1) -> (B, Di, L)
    out = apply_skip_and_gate(y, u, D, z)
    return (out, hs[:, -1]) if return_last_state else out


def scan_variants() -> dict:
    variants = {}
    if numba_available():
        variants["numba"] = selective_scan_numba
    variants["torch"] = selective_scan_torch
    try:
        import mambapy.pscan  # noqa: F401

        variants["mambapy-pscan"] = selective_scan_mambapy
    except ImportError:
        pass
    variants["reference"] = selective_scan_ref
    return variants


# The forms of B and C timed (dema.scan.contract): both input-dependent (DeMa, Mamba-1's S6), both
# time-invariant (S4D-like), both grouped (Mamba-2-like, `groups` groups).
FORMS = (INPUT_DEPENDENT, TIME_INVARIANT, GROUPED)
ONLY_INPUT_DEPENDENT = ("mambapy-pscan",)  # its adapter above takes (B, N, L) only


def floor_ms(elements: int, vector_ops_per_element: float, threads: int, ghz: float, lanes: int = 16) -> float:
    cycles = elements * vector_ops_per_element / lanes / max(threads, 1)
    return 1e3 * cycles / (ghz * 1e9)


def _b_and_c(form: str, batch: int, d_inner: int, length: int, d_state: int, groups: int, gen) -> list:
    """B and C of one form, leaves that require grad."""
    shape = {INPUT_DEPENDENT: (batch, d_state, length), TIME_INVARIANT: (d_inner, d_state),
             GROUPED: (batch, groups, d_state, length)}[form]
    return [torch.randn(*shape, generator=gen, requires_grad=True) for _ in range(2)]


def _timed(scan, u, delta, A, B, C, D, z, bias):
    """(forward without autograd, forward + backward), as the Mamba block calls the scan."""
    def forward():
        with torch.no_grad():
            scan(u, delta, A, B, C, D, z, bias, True)

    def forward_backward():
        scan(u, delta, A, B, C, D, z, bias, True).sum().backward()

    return forward, forward_backward


def run_scan_bench(batch: int = 64, d_inner: int = 128, length: int = 60, d_state: int = 64,
                   repeats: int = 10, budget_s: float = 8.0, ghz: float = 2.6, variants=None,
                   memory: bool = True, forms=FORMS, groups: int | None = None) -> dict:
    """Each variant on each form of B and C; a variant's forms are timed interleaved (one repeat of
    each in turn), so that their ratio holds on a loaded machine. `groups` of the grouped form:
    by default the most, up to 4, that divide d_inner."""
    if groups is None:
        groups = max(g for g in range(1, 5) if d_inner % g == 0)
    if GROUPED in forms and (groups < 1 or d_inner % groups):
        raise ConfigError(f"--groups {groups} must divide d_inner {d_inner}")
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(batch, d_inner, length, generator=gen, requires_grad=True)
    delta = (torch.randn(batch, d_inner, length, generator=gen) * 0.5).requires_grad_()
    A = (-torch.exp(torch.randn(d_inner, d_state, generator=gen))).requires_grad_()
    D = torch.ones(d_inner, requires_grad=True)
    z = torch.randn(batch, d_inner, length, generator=gen, requires_grad=True)
    bias = torch.full((d_inner,), -3.0, requires_grad=True)
    operands = {form: _b_and_c(form, batch, d_inner, length, d_state, groups, gen) for form in forms}
    elements = batch * d_inner * length * d_state
    threads = torch.get_num_threads()
    rows = []
    for name, scan in (variants or scan_variants()).items():
        timed = {form: _timed(scan, u, delta, A, *operands[form], D, z, bias) for form in forms
                 if form == INPUT_DEPENDENT or name not in ONLY_INPUT_DEPENDENT}
        budget = None if budget_s is None else budget_s * len(timed)  # budget_s per form, as per variant
        fwd = measure_interleaved({f: t[0] for f, t in timed.items()}, repeats, warmup=1, budget_s=budget)
        both = measure_interleaved({f: t[1] for f, t in timed.items()}, repeats, warmup=1, budget_s=budget)
        for form, (_, forward_backward) in timed.items():
            rows.append({
                "variant": name, "form": form,
                "fwd_ms": round(fwd[form]["ms"], 2), "fwd_cpu_ms": round(fwd[form]["cpu_ms"], 2),
                "fwd_bwd_ms": round(both[form]["ms"], 2), "fwd_bwd_cpu_ms": round(both[form]["cpu_ms"], 2),
                "fwd_bwd_min_ms": round(both[form]["min_ms"], 2),
                "peak_mb": _round(peak_memory_mb(forward_backward)) if memory else None,
            })
    return {
        "shape": {"batch": batch, "d_inner": d_inner, "length": length, "d_state": d_state, "groups": groups},
        "elements": elements,
        "count": {
            "fwd_flops": FWD_FLOPS * elements, "fwd_exp": elements,
            "fwd_bwd_flops": (FWD_FLOPS + BWD_FLOPS) * elements, "fwd_bwd_exp": 2 * elements,
            # of the input-dependent form (a time-invariant B and C move less, a grouped one more)
            "bytes_in_out": 4 * (4 * batch * d_inner * length + 4 * batch * length * d_state + 2 * d_inner * d_state),
        },
        "floor_ms": {
            "assumed_ghz": ghz, "threads": threads,
            "fwd": round(floor_ms(elements, FWD_VECTOR_OPS, threads, ghz), 2),
            "fwd_bwd": round(floor_ms(elements, FWD_VECTOR_OPS + BWD_VECTOR_OPS, threads, ghz), 2),
            "fwd_1_thread": round(floor_ms(elements, FWD_VECTOR_OPS, 1, ghz), 2),
            "fwd_bwd_1_thread": round(floor_ms(elements, FWD_VECTOR_OPS + BWD_VECTOR_OPS, 1, ghz), 2),
        },
        "rows": rows,
        **machine_info(),
    }


def _round(value):
    return None if value is None or math.isnan(value) else round(value, 1)
