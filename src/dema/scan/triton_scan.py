"""The GPU selective scan in Triton: no build step, forward and analytic backward, one autograd node.

mamba-ssm's CUDA kernel compiles at install (tens of minutes, nvcc matching torch) and has no
wheels, so most GPU users of this package would get a PyTorch scan. Triton compiles this file's
kernels at first use (seconds, cached in ~/.triton), and runs them on the CPU under its interpreter
(`TRITON_INTERPRET=1`), which is how the tests check them without a GPU.

The node is the Numba kernel's (`numba_scan.py`): step size softplus(delta + delta_bias), the
recurrence, the D skip and the SiLU(z) gate, and all their gradients. Here the softplus and the
gate are computed inside the kernels (on a GPU they are free next to the memory traffic).

Layout. One program scans BD channels of one batch element; the sequence is cut into chunks of CL
time steps. A chunk is a (BD, BN, CL) tile (channels, states, time) held in registers:

forward   a = exp(delta A), x = delta u B                              (the whole tile at once)
          (P, S) = associative scan over time of (a, x) with (a1, x1) o (a2, x2) = (a1 a2, a2 x1 + x2)
          h = P h_start + S,  y = sum_n C h,  out = (y + D u) silu(z)  and h_start <- h at the chunk's end
          The state at each chunk's start is saved for the backward (B, Di, chunks, N): small.
backward  chunks last to first: recompute the chunk's states from its saved start state (one scan),
          then the adjoint G_l = C_l g_l + a_{l+1} G_{l+1} with a second scan run over the chunk in
          reversed time order (loaded reversed from memory; the recomputed states are flipped with
          tl.flip). Triton's `associative_scan(reverse=True)` is not used: it gives wrong results for
          non-commutative combines on GPUs (triton-lang/triton issue 4362).
          a_l h_{l-1} = h_l - x_l, so no shifted state tile is needed; a_{l+1} is loaded shifted.

Gradients of B and C sum over channels: each program writes its BD channels' sum into a partial
(B, Di / BD, N, L) buffer that PyTorch sums (deterministic, no atomics); dA, dD and dbias are per
batch element partials summed the same way. Memory is O(B Di L + B (Di / BD) N L + B Di N L / CL),
never the (B, Di, L, N) product.

float32 and float64 are computed as given; half and bfloat16 inputs are computed in float32 and
the results cast back (mamba-ssm keeps float32 state too).

B and C in every form of mamba-ssm's contract (dema.scan.contract). Input-dependent (B, N, L) and
grouped (B, G, N, L) are one layout, (B, G, N, L) with G = 1 for the first (a view): each program
reads one (N, L) slab per chunk, its group's, which is why the block of BD channels must lie in
one group (`block_sizes(group_size=...)`: BD divides the group size), and the blocks' dB, dC
partials are summed per group. Time-invariant (Di, N) (flags B_CONST, C_CONST): a (BD, N) tile
loaded once per program, broadcast over time; its gradient is summed over the chunks in registers
and written per batch element (B, Di, N), summed by PyTorch. With the flags off and one group the
kernels do what they did before the forms (the slab's offset is computed once per program).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os

import torch
import triton
import triton.language as tl

from dema.scan.contract import TIME_INVARIANT, Operand, cast_inputs, check, compute_dtype, grouped_view

__all__ = ["selective_scan_triton", "selective_scan_triton_from_state", "interpreting", "block_sizes"]


def _combine_fn(a1, x1, a2, x2):
    """(a1, x1) then (a2, x2): h -> a2 (a1 h + x1) + x2."""
    return a1 * a2, a2 * x1 + x2


# Always the GPU kind, whatever TRITON_INTERPRET says at import: the compiler needs it so, and the
# interpreter calls the plain function behind it (`.fn`) either way.
_combine = triton.JITFunction(_combine_fn)


def _fwd_kernel(u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, h0_ptr, out_ptr, last_ptr, ckpt_ptr,
                Di, L, N, n_chunks, GB, HB, GC, HC,
                HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                HAS_H0: tl.constexpr, SAVE_CKPT: tl.constexpr, B_CONST: tl.constexpr, C_CONST: tl.constexpr,
                BD: tl.constexpr, BN: tl.constexpr, CL: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    pd = tl.program_id(1)
    d = pd * BD + tl.arange(0, BD)
    n = tl.arange(0, BN)
    j = tl.arange(0, CL)
    dm = d < Di
    nm = n < N
    dn_mask = dm[:, None] & nm[None, :]
    A = tl.load(A_ptr + d[:, None] * N + n[None, :], mask=dn_mask, other=0.0)
    state_off = (b * Di + d[:, None]) * N + n[None, :]
    if HAS_H0:
        h = tl.load(h0_ptr + state_off, mask=dn_mask, other=0.0)
    else:
        h = tl.zeros([BD, BN], dtype=A.dtype)
    if HAS_D:
        Dv = tl.load(D_ptr + d, mask=dm, other=0.0)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d, mask=dm, other=0.0)
    # B and C: a (Di, N) row per channel when time-invariant (B_CONST), else one (N, L) slab per batch
    # element and group; the program's BD channels all lie in its first channel's group (block_sizes)
    if B_CONST:
        Bc = tl.load(B_ptr + d[:, None] * N + n[None, :], mask=dn_mask, other=0.0)  # (BD, BN)
    else:
        B_slab = B_ptr + (b * GB + (pd * BD) // HB) * N * L
    if C_CONST:
        Cc = tl.load(C_ptr + d[:, None] * N + n[None, :], mask=dn_mask, other=0.0)
    else:
        C_slab = C_ptr + (b * GC + (pd * BD) // HC) * N * L
    for c in range(n_chunks):
        l = c * CL + j
        lm = l < L
        dl_mask = dm[:, None] & lm[None, :]
        dl_off = (b * Di + d[:, None]) * L + l[None, :]
        u = tl.load(u_ptr + dl_off, mask=dl_mask, other=0.0)
        dt = tl.load(dt_ptr + dl_off, mask=dl_mask, other=0.0)
        if HAS_BIAS:
            dt = dt + bias[:, None]
        if SOFTPLUS:  # log1p(exp(x)) without log1p: log(w) e / (w - 1), w = 1 + e (exact to a few ulps)
            e = tl.exp(dt)
            w = 1.0 + e
            dt = tl.where(dt > 20.0, dt, tl.where(w == 1.0, e, tl.log(w) * e / (w - 1.0)))
        dt = tl.where(dl_mask, dt, 0.0)  # past the end: a = 1, x = 0, the state passes through
        nl_off = n[:, None] * L + l[None, :]
        nl_mask = nm[:, None] & lm[None, :]
        # B and C as tiles that broadcast against (BD, BN, CL)
        if B_CONST:
            Bx = Bc[:, :, None]
        else:
            Bx = tl.load(B_slab + nl_off, mask=nl_mask, other=0.0)[None, :, :]
        if C_CONST:
            Cx = Cc[:, :, None]
        else:
            Cx = tl.load(C_slab + nl_off, mask=nl_mask, other=0.0)[None, :, :]
        if SAVE_CKPT:
            tl.store(ckpt_ptr + ((b * Di + d[:, None]) * n_chunks + c) * N + n[None, :], h, mask=dn_mask)
        a = tl.exp(dt[:, None, :] * A[:, :, None])
        x = (dt * u)[:, None, :] * Bx
        P, S = tl.associative_scan((a, x), 2, _combine)
        hs = P * h[:, :, None] + S
        y = tl.sum(hs * Cx, axis=1)
        if HAS_D:
            y = y + Dv[:, None] * u
        if HAS_Z:
            zv = tl.load(z_ptr + dl_off, mask=dl_mask, other=0.0)
            y = y * zv / (1.0 + tl.exp(-zv))
        tl.store(out_ptr + dl_off, y, mask=dl_mask)
        h = tl.sum(tl.where((j == CL - 1)[None, None, :], hs, 0.0), axis=2)
    tl.store(last_ptr + state_off, h, mask=dn_mask)


def _bwd_kernel(u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, ckpt_ptr, gout_ptr, glast_ptr,
                du_ptr, ddt_ptr, dz_ptr, dA_ptr, dD_ptr, dbias_ptr, dB_ptr, dC_ptr,
                Di, L, N, n_chunks, n_dblk, GB, HB, GC, HC,
                HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                B_CONST: tl.constexpr, C_CONST: tl.constexpr,
                BD: tl.constexpr, BN: tl.constexpr, CL: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    pd = tl.program_id(1)
    d = pd * BD + tl.arange(0, BD)
    n = tl.arange(0, BN)
    j = tl.arange(0, CL)
    rj = CL - 1 - j  # a chunk read in reversed time order
    dm = d < Di
    nm = n < N
    dn_mask = dm[:, None] & nm[None, :]
    A = tl.load(A_ptr + d[:, None] * N + n[None, :], mask=dn_mask, other=0.0)
    state_off = (b * Di + d[:, None]) * N + n[None, :]
    G_next = tl.load(glast_ptr + state_off, mask=dn_mask, other=0.0)  # dL/dh at the chunk after this one
    dA_acc = tl.zeros([BD, BN], dtype=A.dtype)
    dD_acc = tl.zeros([BD], dtype=A.dtype)
    dbias_acc = tl.zeros([BD], dtype=A.dtype)
    if HAS_D:
        Dv = tl.load(D_ptr + d, mask=dm, other=0.0)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d, mask=dm, other=0.0)
    # B and C as in the forward; a time-invariant one's gradient sums over the chunks in registers
    if B_CONST:
        Bc = tl.load(B_ptr + d[:, None] * N + n[None, :], mask=dn_mask, other=0.0)
        dB_acc = tl.zeros([BD, BN], dtype=A.dtype)
    else:
        B_slab = B_ptr + (b * GB + (pd * BD) // HB) * N * L
    if C_CONST:
        Cc = tl.load(C_ptr + d[:, None] * N + n[None, :], mask=dn_mask, other=0.0)
        dC_acc = tl.zeros([BD, BN], dtype=A.dtype)
    else:
        C_slab = C_ptr + (b * GC + (pd * BD) // HC) * N * L
    row = b * Di + d[:, None]
    for cc in range(n_chunks):
        c = n_chunks - 1 - cc
        # 1. the chunk's states, in time order, from its saved start state
        l = c * CL + j
        lm = l < L
        dl_mask = dm[:, None] & lm[None, :]
        dl_off = row * L + l[None, :]
        u = tl.load(u_ptr + dl_off, mask=dl_mask, other=0.0)
        dt = tl.load(dt_ptr + dl_off, mask=dl_mask, other=0.0)
        if HAS_BIAS:
            dt = dt + bias[:, None]
        if SOFTPLUS:
            e = tl.exp(dt)
            w = 1.0 + e
            dt = tl.where(dt > 20.0, dt, tl.where(w == 1.0, e, tl.log(w) * e / (w - 1.0)))
        dt = tl.where(dl_mask, dt, 0.0)
        nl_mask = nm[:, None] & lm[None, :]
        if B_CONST:
            Bx = Bc[:, :, None]
        else:
            Bx = tl.load(B_slab + n[:, None] * L + l[None, :], mask=nl_mask, other=0.0)[None, :, :]
        h0 = tl.load(ckpt_ptr + (row * n_chunks + c) * N + n[None, :], mask=dn_mask, other=0.0)
        a = tl.exp(dt[:, None, :] * A[:, :, None])
        x = (dt * u)[:, None, :] * Bx
        P, S = tl.associative_scan((a, x), 2, _combine)
        hs = tl.flip(P * h0[:, :, None] + S, 2)  # h_l, reversed in time
        # 2. the same chunk read reversed: k = 0 is its last time step
        lr = c * CL + rj
        lrm = lr < L
        r_mask = dm[:, None] & lrm[None, :]
        r_off = row * L + lr[None, :]
        u = tl.load(u_ptr + r_off, mask=r_mask, other=0.0)
        raw = tl.load(dt_ptr + r_off, mask=r_mask, other=0.0)
        if HAS_BIAS:
            raw = raw + bias[:, None]
        dt = raw
        if SOFTPLUS:
            e = tl.exp(raw)
            w = 1.0 + e
            dt = tl.where(raw > 20.0, raw, tl.where(w == 1.0, e, tl.log(w) * e / (w - 1.0)))
        dt = tl.where(r_mask, dt, 0.0)
        nr_mask = nm[:, None] & lrm[None, :]
        nr_off = n[:, None] * L + lr[None, :]
        if B_CONST:
            Bx = Bc[:, :, None]
        else:
            Bx = tl.load(B_slab + nr_off, mask=nr_mask, other=0.0)[None, :, :]
        if C_CONST:
            Cx = Cc[:, :, None]
        else:
            Cx = tl.load(C_slab + nr_off, mask=nr_mask, other=0.0)[None, :, :]
        g = tl.load(gout_ptr + r_off, mask=r_mask, other=0.0)
        # a_{l+1}: the step size one step later (1 past the end, where G_{L-1} takes dL/dh_last as is)
        l1 = lr + 1
        n_mask = dm[:, None] & (l1 < L)[None, :]
        dt1 = tl.load(dt_ptr + row * L + l1[None, :], mask=n_mask, other=0.0)
        if HAS_BIAS:
            dt1 = dt1 + bias[:, None]
        if SOFTPLUS:
            e = tl.exp(dt1)
            w = 1.0 + e
            dt1 = tl.where(dt1 > 20.0, dt1, tl.where(w == 1.0, e, tl.log(w) * e / (w - 1.0)))
        dt1 = tl.where(n_mask, dt1, 0.0)
        a_next = tl.exp(dt1[:, None, :] * A[:, :, None])
        # 3. through the gate: g becomes dL/dy, y = <C, h> + D u
        if HAS_Z:
            y = tl.sum(hs * Cx, axis=1)
            if HAS_D:
                y = y + Dv[:, None] * u
            zv = tl.load(z_ptr + r_off, mask=r_mask, other=0.0)
            sz = 1.0 / (1.0 + tl.exp(-zv))
            tl.store(dz_ptr + r_off, g * y * sz * (1.0 + zv * (1.0 - sz)), mask=r_mask)
            g = g * zv * sz
        # 4. the adjoint: G_l = C_l g_l + a_{l+1} G_{l+1}, a forward scan in reversed time
        Pa, Sb = tl.associative_scan((a_next, Cx * g[:, None, :]), 2, _combine)
        G = Sb + Pa * G_next[:, :, None]
        G_next = tl.sum(tl.where((j == CL - 1)[None, None, :], G, 0.0), axis=2)  # G at the chunk's start
        x = (dt * u)[:, None, :] * Bx
        t = G * (hs - x)  # G_l a_l h_{l-1}: dL/d(delta_l A)
        part_off = ((b * n_dblk + pd) * N + n[:, None]) * L + lr[None, :]
        if B_CONST:
            dB_acc += tl.sum((dt * u)[:, None, :] * G, axis=2)
        else:  # this block's channels' sum, (BN, CL)
            tl.store(dB_ptr + part_off, tl.sum((dt * u)[:, None, :] * G, axis=0), mask=nr_mask)
        if C_CONST:
            dC_acc += tl.sum(g[:, None, :] * hs, axis=2)
        else:
            tl.store(dC_ptr + part_off, tl.sum(g[:, None, :] * hs, axis=0), mask=nr_mask)
        g_dot_b = tl.sum(G * Bx, axis=1)
        dA_acc += tl.sum(dt[:, None, :] * t, axis=2)
        g_delta = g_dot_b * u + tl.sum(t * A[:, :, None], axis=1)
        du = g_dot_b * dt
        if HAS_D:
            du = du + g * Dv[:, None]
            dD_acc += tl.sum(tl.where(r_mask, g * u, 0.0), axis=1)
        if SOFTPLUS:
            g_delta = g_delta / (1.0 + tl.exp(-raw))  # softplus' = sigmoid
        tl.store(du_ptr + r_off, du, mask=r_mask)
        tl.store(ddt_ptr + r_off, g_delta, mask=r_mask)
        dbias_acc += tl.sum(tl.where(r_mask, g_delta, 0.0), axis=1)
    tl.store(dA_ptr + state_off, dA_acc, mask=dn_mask)
    if B_CONST:  # per batch element (B, Di, N), summed by the caller
        tl.store(dB_ptr + state_off, dB_acc, mask=dn_mask)
    if C_CONST:
        tl.store(dC_ptr + state_off, dC_acc, mask=dn_mask)
    if HAS_D:
        tl.store(dD_ptr + b * Di + d, dD_acc, mask=dm)
    tl.store(dbias_ptr + b * Di + d, dbias_acc, mask=dm)


# --- launching -------------------------------------------------------------------------------


def interpreting() -> bool:
    """True when Triton runs kernels on the CPU with its interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def _interpretable_stdlib(interpret: bool):
    """The interpreter runs a kernel's calls into Triton's standard library (tl.zeros, tl.sum,
    tl.flip, ...) only if those are interpreted functions too, which they are when TRITON_INTERPRET=1
    was set before triton was first imported. Imported earlier (torch's FlopCounterMode imports
    triton, for one), they are GPU functions; for the duration of an interpreted launch, every such
    function of triton.language is swapped for an interpreted copy. (The other way round, compiling
    for a GPU in a process whose triton was imported for the interpreter, is not supported by Triton;
    GPU runs never set TRITON_INTERPRET.)

    This patches Triton's modules, which dema does nowhere else. It stays because nothing else makes
    the case work: Triton decides once, at its import, what its standard library is (without the
    swap an interpreted kernel fails with "Cannot call @triton.jit'd outside of the scope of a
    kernel", checked with Triton 3.9), and avoiding tl.sum, tl.zeros and tl.flip would change the GPU
    kernels for the sake of a CPU test. Only under the interpreter (tests, never a GPU run), and
    undone after each launch; an interpreted launch in another thread at the same time would see
    the swap too, which the interpreter, running kernels element by element in Python, never needs."""
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    saved = []
    if interpret and isinstance(tl.zeros, JITFunction):
        for module in (tl, tl.standard, tl.math):
            for name, fn in list(vars(module).items()):
                if isinstance(fn, JITFunction):
                    saved.append((module, name, fn))
                    setattr(module, name, InterpretedFunction(fn.fn))
    try:
        yield
    finally:
        for module, name, fn in saved:
            setattr(module, name, fn)


@functools.cache
def _kernels(interpret: bool):
    """The two kernels, compiled for the GPU or interpreted. Made by the classes `triton.jit`
    chooses between, not by `triton.jit` itself, which picks by TRITON_INTERPRET: so each mode is
    made whatever the environment says, and nothing writes TRITON_INTERPRET."""
    if interpret:
        from triton.runtime.interpreter import InterpretedFunction

        return InterpretedFunction(_fwd_kernel), InterpretedFunction(_bwd_kernel)
    return triton.JITFunction(_fwd_kernel), triton.JITFunction(_bwd_kernel)


# Tile sizes. TILE caps BD * BN * CL: the backward keeps about ten such tiles live per program.
TILE = 4096
CHUNK = 32
# 8 warps: at the preset's blocks (2, 64, 32) the backward needs 255 registers and spills 216 bytes
# per thread with 4 warps, none with 8 (ptxas for sm_90, compiled here without a GPU).
WARPS = 8
INTERPRET_TILE = 256  # the interpreter runs each scan element by element in Python: keep tiles small
INTERPRET_CHUNK = 8


def block_sizes(d_inner: int, length: int, d_state: int, *, tile: int | None = None,
                chunk: int | None = None, group_size: int | None = None) -> tuple[int, int, int]:
    """(BD, BN, CL): channels per program, padded state size, chunk length (powers of two).
    `group_size`: the channels per group of a grouped B or C; BD then divides it, so that each
    program's channels read one group's slab (a group of odd size: one channel per program)."""
    interpret = interpreting()
    tile = tile or (INTERPRET_TILE if interpret else TILE)
    chunk = chunk or (INTERPRET_CHUNK if interpret else CHUNK)
    bn = triton.next_power_of_2(d_state)
    cl = min(triton.next_power_of_2(length), chunk, max(1, tile // bn))
    bd = max(1, min(triton.next_power_of_2(d_inner), tile // (bn * cl)))
    if group_size is not None:
        bd = min(bd, group_size & -group_size)  # the largest power of two dividing group_size
    return bd, bn, cl


def _group_size(d_inner: int, *operands: torch.Tensor) -> int | None:
    """The channels per group BD must divide: of the grouped operands ((B, G, N, L), G > 1), the
    gcd of their group sizes; None when every operand is time-invariant or has one group."""
    sizes = [d_inner // X.shape[1] for X in operands if X.dim() == 4 and X.shape[1] > 1]
    return math.gcd(*sizes) if sizes else None


def _blocks(u, A, B, C, blocks):
    """The tile sizes for these tensors: `blocks` if given (tests), checked against the groups."""
    d_inner = u.shape[1]
    group_size = _group_size(d_inner, B, C)
    if blocks is None:
        return block_sizes(d_inner, u.shape[2], A.shape[1], group_size=group_size)
    if group_size is not None and group_size % blocks[0]:
        raise ValueError(f"blocks {blocks}: {blocks[0]} channels per program do not divide the groups' "
                         f"{group_size} channels")
    return blocks


def _check_device(u: torch.Tensor) -> None:
    if u.device.type != "cuda" and not interpreting():
        from dema.errors import ConfigError

        raise ConfigError(
            f"the gpu scan (Triton) runs on CUDA tensors, got {u.device.type}; on the CPU it runs only under "
            "Triton's interpreter (TRITON_INTERPRET=1, slow: for tests). CPU scans: DEMA_SCAN=numba|ref|torch")


def _layout(X: torch.Tensor, d_inner: int) -> tuple[int, int, bool]:
    """(groups, channels per group, time-invariant) of a kernel operand: (Di, N) or (B, G, N, L)."""
    if X.dim() == 2:
        return 1, d_inner, True
    return X.shape[1], d_inner // X.shape[1], False


def _forward(u, delta, A, B, C, D, z, delta_bias, softplus, h0, save_ckpt, blocks=None, warps=WARPS):
    batch, d_inner, length = u.shape
    d_state = A.shape[1]
    bd, bn, cl = _blocks(u, A, B, C, blocks)
    n_chunks = triton.cdiv(length, cl)
    out = torch.empty_like(u)
    last = u.new_empty(batch, d_inner, d_state)
    ckpt = u.new_empty(batch, d_inner, n_chunks, d_state) if save_ckpt else last
    (gb, hb, b_const), (gc, hc, c_const) = _layout(B, d_inner), _layout(C, d_inner)
    interpret = interpreting()
    fwd, _ = _kernels(interpret)
    grid = (batch, triton.cdiv(d_inner, bd))
    launch = {} if interpret else {"num_warps": warps}
    with _interpretable_stdlib(interpret):
        fwd[grid](u, delta, A, B, C, u if D is None else D, u if z is None else z,
                  u if delta_bias is None else delta_bias, last if h0 is None else h0, out, last, ckpt,
                  d_inner, length, d_state, n_chunks, gb, hb, gc, hc,
                  HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
                  SOFTPLUS=bool(softplus), HAS_H0=h0 is not None, SAVE_CKPT=save_ckpt, B_CONST=b_const,
                  C_CONST=c_const, BD=bd, BN=bn, CL=cl, **launch)
    return out, last, ckpt


def _grad_buffer(X, batch, d_inner, n_dblk, length):
    """Where the backward writes B's or C's gradient: per batch element (B, Di, N) when
    time-invariant, else per channel block (B, Di / BD, N, L)."""
    d_state = X.shape[-1] if X.dim() == 2 else X.shape[2]
    if X.dim() == 2:
        return X.new_empty(batch, d_inner, d_state)
    return X.new_empty(batch, n_dblk, d_state, length)


def _reduce_grad(part, X):
    """The partials of `_grad_buffer` summed into X's shape: over the batch for a time-invariant X,
    over each group's channel blocks for (B, G, N, L) (BD divides the group size, so a group's
    blocks are consecutive; one group takes every block, masked rows included)."""
    if X.dim() == 2:
        return part.sum(0)
    batch, groups, d_state, length = X.shape
    return part.view(batch, groups, -1, d_state, length).sum(2)


class _TritonScan(torch.autograd.Function):
    """(u, delta, A, B, C, D, z, delta_bias) -> (out, last state); contiguous tensors of one dtype,
    B and C each (Di, N) or (B, G, N, L) (`_operand`)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, softplus, blocks, warps):
        blocks = _blocks(u, A, B, C, blocks)
        out, last, ckpt = _forward(u, delta, A, B, C, D, z, delta_bias, softplus, None, True, blocks, warps)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, ckpt)
        ctx.softplus, ctx.blocks, ctx.warps = bool(softplus), blocks, warps
        return out, last

    @staticmethod
    def backward(ctx, grad_out, grad_last):
        u, delta, A, B, C, D, z, delta_bias, ckpt = ctx.saved_tensors
        batch, d_inner, length = u.shape
        d_state = A.shape[1]
        bd, bn, cl = ctx.blocks
        n_chunks, n_dblk = triton.cdiv(length, cl), triton.cdiv(d_inner, bd)
        grad_out = torch.zeros_like(u) if grad_out is None else grad_out.contiguous()
        grad_last = u.new_zeros(batch, d_inner, d_state) if grad_last is None else grad_last.contiguous()
        du, ddelta = torch.empty_like(u), torch.empty_like(u)
        dz = torch.empty_like(u) if z is not None else None
        dA = u.new_empty(batch, d_inner, d_state)
        dD, dbias = u.new_empty(batch, d_inner), u.new_empty(batch, d_inner)
        dB = _grad_buffer(B, batch, d_inner, n_dblk, length)
        dC = _grad_buffer(C, batch, d_inner, n_dblk, length)
        (gb, hb, b_const), (gc, hc, c_const) = _layout(B, d_inner), _layout(C, d_inner)
        interpret = interpreting()
        _, bwd = _kernels(interpret)
        launch = {} if interpret else {"num_warps": ctx.warps}
        with _interpretable_stdlib(interpret):
            bwd[(batch, n_dblk)](u, delta, A, B, C, u if D is None else D, u if z is None else z,
                                 u if delta_bias is None else delta_bias, ckpt, grad_out, grad_last,
                                 du, ddelta, u if dz is None else dz, dA, dD, dbias, dB, dC,
                                 d_inner, length, d_state, n_chunks, n_dblk, gb, hb, gc, hc,
                                 HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
                                 SOFTPLUS=ctx.softplus, B_CONST=b_const, C_CONST=c_const, BD=bd, BN=bn, CL=cl,
                                 **launch)
        return (du, ddelta, dA.sum(0), _reduce_grad(dB, B), _reduce_grad(dC, C),
                dD.sum(0) if D is not None else None, dz, dbias.sum(0) if delta_bias is not None else None,
                None, None, None)


def _operand(X: torch.Tensor, form: Operand) -> torch.Tensor:
    """B or C as the kernels read it: (Di, N) time-invariant, else (B, G, N, L) (a view of an
    input-dependent (B, N, L), no copy), contiguous."""
    return (X if form.kind == TIME_INVARIANT else grouped_view(X, form)).contiguous()


def _prepare(u, delta, A, B, C, D, z, delta_bias, initial_state=None):
    """Checked (dema.scan.contract), on a device the kernels run on, cast to the compute dtype
    (differentiably), contiguous, B and C as kernel operands."""
    B_form, C_form = check(u, delta, A, B, C, D, z, delta_bias, initial_state)
    _check_device(u)
    dtype = compute_dtype(u, delta, A, B, C, D, z, delta_bias, initial_state)
    u, delta, A, B, C, D, z, delta_bias, h0 = [
        None if t is None else t.contiguous()
        for t in cast_inputs(dtype, u, delta, A, B, C, D, z, delta_bias, initial_state)]
    return u, delta, A, _operand(B, B_form), _operand(C, C_form), D, z, delta_bias, h0


def selective_scan_triton(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False, *,
    blocks: tuple[int, int, int] | None = None, warps: int = WARPS,
):
    """Same signature and results as `selective_scan_ref` (mamba-ssm's); `blocks` = (BD, BN, CL)
    overrides the tile sizes (tests use it to cut a sequence into many chunks, `dema bench scan-gpu`
    to try others), `warps` the warps per program on the GPU."""
    out_dtype = u.dtype
    *args, _ = _prepare(u, delta, A, B, C, D, z, delta_bias)
    out, last = _TritonScan.apply(*args, delta_softplus, blocks, warps)
    out = out.to(out_dtype)
    return (out, last) if return_last_state else out


@torch.no_grad()
def selective_scan_triton_from_state(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                                     initial_state=None):
    """Inference only: the scan continued from `initial_state` (B, Di, N) -> (out, last state)."""
    *args, h0 = _prepare(u, delta, A, B, C, D, z, delta_bias, initial_state)
    out, last, _ = _forward(*args, delta_softplus, h0, False)
    return out.to(u.dtype), last
