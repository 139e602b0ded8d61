"""The fast CPU selective scan: one Numba kernel forward, one backward, no (B, Di, L, N) tensor.

Design. Autograd through PyTorch ops has to materialise the discretised decay and drive
(B, Di, L, N) (31.5M floats at the hopper preset, K 20, batch 64) and the states for the backward
pass; on a small CPU that allocation and memory traffic dominate (see docs/PERFORMANCE.md). Here
each (batch, channel) sequence is scanned on its own, with its state in a length-N buffer:

forward   for l in 0..L-1:  a = exp(delta_l A),  h = a * h + delta_l u_l B_l,  y_l = <C_l, h>
          (h lives in a length-N buffer; only h at the start of each backward chunk is kept)
backward  recompute the forward of two channels into (2, L+1, N) scratch buffers (states and
          decays; a few tens of KB at K 20, per call), then run both adjoint recurrences backwards
          in one loop over n (sharing the rows of B, C, dB, dC; one channel at a time where two
          channels read different rows). A long sequence runs in chunks whose scratch fits in
          PAIR_SCRATCH_BYTES (256 KB: 255 steps at N 64 in float32), the last chunk first, each
          recomputed from the state the forward kept at its start, dL/dh carried between them:
          G_l = dL/dh_l = C_l gy_l + a_{l+1} G_{l+1}        (G_{L-1} starts at dL/dh_last)
          du_l = delta_l <G_l, B_l>
          ddelta_l = u_l <G_l, B_l> + sum_n G_l h_{l-1} a_l A       (through a_l = exp(delta_l A))
          dA += delta_l G_l h_{l-1} a_l,  dB_l += delta_l u_l G_l,  dC_l += gy_l h_l
          dA is summed over the batch from per-batch partials (B, Di, N).

Threads: the batch is split into as many slices as torch has threads (torch.set_num_threads is
the one knob), each scanned by a serial, GIL-free (nogil) kernel on a thread pool. Not Numba's
`parallel=True`: its default OpenMP layer is a second OpenMP runtime beside PyTorch's, and with
both in one process PyTorch's elementwise ops ran 10-100x slower after the first launch (a
(64, 128, 60) multiply went from 0.07 ms to 8 ms); its parallel-loop lowering also vectorised the
backward worse (2x slower per thread) and took 10 s more to compile. Slices own their rows of dB,
dC and dA, so no two threads write the same memory.

Memory is O(B Di L + B L N + B Di N L / chunk + threads chunk N): linear in L, never the
(B, Di, L, N) product.

The exponential. LLVM without a vector math library calls libm's scalar exp once per element,
which took 90% of the time (51 ms against 5 ms at the preset, forward, two idle cores). `_exp` below is a Cody-Waite
range reduction plus a Taylor polynomial and an exponent bit-cast: plain arithmetic that LLVM
vectorises (AVX-512 here). Relative error: 1e-7 in float32, ~1e-16 in float64, inputs clamped
to the normal range (exp(-87) in float32 is 1.6e-38 instead of 0: harmless for a decay factor).

The whole of mamba-ssm's scan is one autograd node: delta + delta_bias and softplus before the
recurrence, the D skip and the SiLU(z) gate after it, and all their gradients (in the backward,
y_l is recomputed from the recomputed states). The softplus, sigmoid and SiLU values themselves
are computed by PyTorch's vectorised kernels outside autograd and handed to the Numba kernels.
`return_last_state` returns h_{L-1}, and it is differentiable too (the adjoint starts from its
gradient), unlike mamba-ssm's. `selective_scan_numba_from_state` (inference) starts the forward
kernel from a given state instead of zero (dema.scan.stateful).

fastmath is on (reductions must be reassociated to vectorise); NaN inputs still give NaN outputs
(tested), so a diverged model still shows up as a non-finite loss.

The kernels compile with LLVM's `noalias` on their array arguments (dema.scan.numba_noalias): no
runtime alias checks in front of their vector loops, on the promise that no array a kernel writes
overlaps another it accesses (tests/scan/test_scan_noalias.py holds every call to it).

B and C. The kernels read them as "rows" (B, G, L or 1, N): channel d at step l reads row
[b, d // (Di / G), l] (l = 0 when time-invariant), so every form of mamba-ssm's contract
(dema.scan.contract) runs the same loops: input-dependent (B, 1, L, N), grouped (B, G, L, N),
time-invariant (B, Di, 1, N) (repeated over the batch so that each thread's batch slice owns its
gradient rows, Di N floats per element, as dA's partials; autograd sums them). The conversion is
differentiable torch ops outside the autograd node. The two-channel backward runs where both
channels of each pair read one row (one group, or groups of even size), else the one-channel form.
Inputs are scanned in float32 (float64 if any is float64) and the output cast back to u's dtype.
"""

from __future__ import annotations

import concurrent.futures
import functools

import numpy as np
import torch
import torch.nn.functional as F
from llvmlite import ir
from numba import njit, types
from numba.core.extending import intrinsic, overload

from dema.scan.contract import TIME_INVARIANT, Operand, cast_inputs, check, compute_dtype, grouped_view
from dema.scan.numba_noalias import NoAliasCompiler


# fastmath lets LLVM reassociate the y = <C, h> reduction so that it vectorises.
_JIT = dict(fastmath=True, cache=True, nogil=True)
# The kernels: their array arguments never overlap where one is written (numba_noalias's contract), so
# LLVM drops the runtime alias checks in front of their vector loops (the node's backward 12-15% faster).
_KERNEL_JIT = dict(_JIT, pipeline_class=NoAliasCompiler)


# --- a vectorisable exp ---------------------------------------------------------------------


@intrinsic
def _bits_to_f32(typingctx, bits):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _bits_to_f64(typingctx, bits):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


_LOG2E = 1.4426950408889634


@njit(inline="always", fastmath=True)
def _exp_f32(x):
    x = min(max(x, np.float32(-87.0)), np.float32(88.0))
    k = np.floor(x * np.float32(_LOG2E) + np.float32(0.5))  # x = k ln2 + r, |r| <= ln2 / 2
    r = x - k * np.float32(0.693145751953125) - k * np.float32(1.428606820309417232e-06)
    p = np.float32(1.0 / 5040.0)  # Taylor to r^7: truncation error < 1e-8
    p = p * r + np.float32(1.0 / 720.0)
    p = p * r + np.float32(1.0 / 120.0)
    p = p * r + np.float32(1.0 / 24.0)
    p = p * r + np.float32(1.0 / 6.0)
    p = p * r + np.float32(0.5)
    p = p * r + np.float32(1.0)
    p = p * r + np.float32(1.0)
    return p * _bits_to_f32((np.int32(k) + np.int32(127)) << np.int32(23))  # p * 2^k


@njit(inline="always", fastmath=True)
def _exp_f64(x):
    x = min(max(x, -708.0), 709.0)
    k = np.floor(x * _LOG2E + 0.5)
    r = x - k * 6.93147180369123816490e-01 - k * 1.90821492927058770002e-10  # fdlibm's ln2 split
    p = 1.0 / 6227020800.0  # Taylor to r^13: truncation error < 1e-17
    for i in range(12, 0, -1):
        p = p * r + _INV_FACT[i]
    p = p * r + 1.0
    return p * _bits_to_f64((np.int64(k) + np.int64(1023)) << np.int64(52))


_INV_FACT = np.array([1.0 / float(np.prod(np.arange(1, i + 1))) for i in range(14)])


def _exp(x):
    """Dispatched by Numba on the scalar type; never called from Python."""
    raise NotImplementedError


@overload(_exp, inline="always")
def _exp_overload(x):
    if x == types.float32:
        return lambda x: _exp_f32(x)
    if x == types.float64:
        return lambda x: _exp_f64(x)
    return None


# --- kernels ---------------------------------------------------------------------------------

# The backward recomputes the states and decays of the channels it works on into scratch buffers:
# two channels (the pairs form) over L steps take 4 (L + 1) N floats, 3 MB at 3000 steps and N 64,
# and past the L2 cache each step's reads miss (per step, the backward at 3000 steps cost about 1.6x
# what it cost at 300). So long sequences run in chunks of steps whose scratch fits in
# PAIR_SCRATCH_BYTES, last chunk first: the forward keeps the state at each chunk's start, and the
# backward recomputes one chunk at a time from it, carrying dL/dh from one chunk into the one
# before. The same operations in the same order as one chunk: the same numbers up to float rounding
# (a chunk starts from the state the forward computed, not one the backward recomputed).
PAIR_SCRATCH_BYTES = 256 * 1024


def chunk_steps(length: int, d_state: int, itemsize: int) -> int:
    """Steps per chunk of the backward: the scratch of two channels over a chunk fits PAIR_SCRATCH_BYTES."""
    return max(1, min(length, PAIR_SCRATCH_BYTES // (4 * d_state * itemsize) - 1))
# Argument order: the arrays shared by every batch slice (and flags) first, then the batched ones.
#
# B and C come as "rows" Bt, Ct (B, G, L or 1, N), C-contiguous: channel d at step l reads the row
# Bt[b, d // (Di / G), l * step], step 0 when the array has one step. Every form of mamba-ssm's
# contract is such an array (see `_rows`): input-dependent (B, 1, L, N), grouped (B, G, L, N),
# time-invariant (B, Di, 1, N). The inner loops over n see a contiguous row either way, so they
# vectorise as before; only the row's index changes.


@njit(inline="always")
def _layout(X, d_inner, length):
    """(channels per group, step stride) of a (B, G, L or 1, N) rows array."""
    return d_inner // X.shape[1], 1 if X.shape[2] == length else 0


@njit(**_KERNEL_JIT)
def _forward_kernel(A, D, has_z, has_h0, chunk, u, delta, gate, Bt, Ct, h0, out, last, starts):
    """A (Di, N), D (Di,); u, delta (the step size), gate = silu(z) (B, Di, L); Bt, Ct rows (B, G, L
    or 1, N); h0 (B, Di, N) the state before the first token (read only if has_h0, else zero).
    Writes out = (<C, h> + D u) * gate (B, Di, L), last = h_{L-1} (B, Di, N) and, if chunk > 0,
    starts (B, chunks, Di, N): the state before each chunk's first step (the backward's chunks)."""
    batch, d_inner, length = u.shape
    n_state = A.shape[1]
    b_per, b_step = _layout(Bt, d_inner, length)
    c_per, c_step = _layout(Ct, d_inner, length)
    for job in range(batch * d_inner):
        b, d = job // d_inner, job % d_inner
        b_g, c_g = d // b_per, d // c_per
        a_row = A[d]
        h = h0[b, d].copy() if has_h0 else np.zeros(n_state, dtype=u.dtype)
        for l in range(length):
            if chunk > 0 and l % chunk == 0:
                starts[b, l // chunk, d] = h
            ul = u[b, d, l]
            dl = delta[b, d, l]
            du = dl * ul
            b_row, c_row = Bt[b, b_g, l * b_step], Ct[b, c_g, l * c_step]
            y = a_row[0] * np.float32(0.0)  # a zero of the input dtype
            for n in range(n_state):
                hn = _exp(dl * a_row[n]) * h[n] + du * b_row[n]
                h[n] = hn
                y += c_row[n] * hn
            y += D[d] * ul
            if has_z:
                y *= gate[b, d, l]
            out[b, d, l] = y
        last[b, d] = h


@njit(inline="always")
def _zero_rows(dX, b, step, first, stop, accumulate):
    """Zero batch element b's rows of dB or dC (B, G, L or 1, N) before a chunk adds into them: the
    rows of its own steps, or a time-invariant row (step 0) once, before the first chunk run."""
    if step == 1:
        dX[b, :, first:stop] = 0.0
    elif not accumulate:
        dX[b] = 0.0


@njit(inline="always")
def _start_sums(dA_part, dD_part, dbias_part, b, d, accumulate):
    """Zero channel d's partial sums of batch element b, unless they go on from a later chunk."""
    if not accumulate:
        dA_part[b, d] = 0.0
        dD_part[b, d] = 0.0
        dbias_part[b, d] = 0.0


@njit(**_KERNEL_JIT)
def _backward_kernel(A, D, has_z, softplus, pairs, first, stop, u, delta, z, sig_z, sig_raw, Bt, Ct, grad_out,
                     h_before, grad_last, du_out, ddelta_out, dz_out, dA_part, dD_part, dbias_part, dBt, dCt,
                     grad_first):
    """Adjoint of `_forward_kernel` and of the step size and gate around it, over steps first to
    stop - 1 (all of them, or one chunk; the arrays are always whole). In: z, sig_z = sigmoid(z),
    sig_raw = sigmoid(delta + bias) (softplus' derivative) (B, Di, L), grad_out (B, Di, L),
    h_before (B, Di, N) the state before step `first` (read only if first > 0, else zero),
    grad_last (B, Di, N) dL/dh of step stop - 1 from the steps after it. Writes du_out, ddelta_out
    (w.r.t. delta before bias and softplus), dz_out (B, Di, L) at those steps and grad_first
    (B, Di, N), dL/dh_before; dBt, dCt (Bt's and Ct's shapes: a time-invariant row sums over the
    steps, a shared one over its channels) and the per-batch partials dA_part (B, Di, N), dD_part,
    dbias_part (B, Di), which the caller sums over the batch: where stop < L, the chunks after these
    steps ran first, and the sums go on from what they wrote. `pairs` only where both channels of
    every pair read the same rows (`_pairs_share_rows`).

    The kernel zeroes what it adds into, not the caller: zeroed just before their first use, the
    rows stay in cache (zeroed up front by the caller, the whole backward at the preset took 1.3-1.8x
    as long, measured side by side on one machine)."""
    # the scratch, passed in as arguments so that LLVM knows it overlaps nothing else (numba_noalias):
    # two channels' for the pairs form, the first of them for the one-channel form; states' zero row 0
    # stands for h_before when first == 0 (never written then)
    n_state, length = A.shape[1], stop - first
    states = np.zeros((2, length + 1, n_state), dtype=u.dtype)  # states[k, l + 1] = h_l of channel k
    decays = np.empty((2, length, n_state), dtype=u.dtype)
    carry = np.empty((2, n_state), dtype=u.dtype)  # a_{l+1} G_{l+1} per channel
    for b in range(u.shape[0]):
        if pairs:
            _backward_pairs(b, A, D, has_z, softplus, first, stop, u, delta, z, sig_z, sig_raw, Bt, Ct, grad_out,
                            h_before, grad_last, du_out, ddelta_out, dz_out, dA_part, dD_part, dbias_part, dBt, dCt,
                            grad_first, states, decays, carry)
        else:
            _backward_single(b, A, D, has_z, softplus, first, stop, u, delta, z, sig_z, sig_raw, Bt, Ct, grad_out,
                             h_before, grad_last, du_out, ddelta_out, dz_out, dA_part, dD_part, dbias_part, dBt, dCt,
                             grad_first, states[0], decays[0], carry[0])


@njit(**_KERNEL_JIT)
def _backward_single(b, A, D, has_z, softplus, first, stop, u, delta, z, sig_z, sig_raw, Bt, Ct, grad_out,
                     h_before, grad_last, du_out, ddelta_out, dz_out, dA_part, dD_part, dbias_part, dBt, dCt,
                     grad_first, states, decays, carry):
    """The backward for batch element b, every channel, one channel at a time (where the channels of
    a pair read different rows of B or C). The scratch comes from the caller: states (L + 1, N),
    decays (L, N), carry (N,)."""
    _, d_inner, steps = u.shape
    length = stop - first
    accumulate = stop < steps  # the chunks after these steps ran first: their sums go on
    n_state = A.shape[1]
    b_per, b_step = _layout(Bt, d_inner, steps)
    c_per, c_step = _layout(Ct, d_inner, steps)
    # the scratch is indexed by i = l - first: states[i + 1] = h_l, states[0] = h_before (zero if first == 0)
    _zero_rows(dBt, b, b_step, first, stop, accumulate)
    _zero_rows(dCt, b, c_step, first, stop, accumulate)
    for d in range(d_inner):
        a_row = A[d]
        b_g, c_g = d // b_per, d // c_per
        if first > 0:
            states[0] = h_before[b, d]
        for i in range(length):  # recompute the forward
            l = first + i
            dl = delta[b, d, l]
            du = dl * u[b, d, l]
            a_l, h_prev, h_cur, b_row = decays[i], states[i], states[i + 1], Bt[b, b_g, l * b_step]
            for n in range(n_state):
                an = _exp(dl * a_row[n])
                a_l[n] = an
                h_cur[n] = an * h_prev[n] + du * b_row[n]
        carry[:] = grad_last[b, d]
        _start_sums(dA_part, dD_part, dbias_part, b, d, accumulate)
        dA_row = dA_part[b, d]
        dD = dD_part[b, d]  # the sums so far (chunks later in time), continued in the same order
        dbias = dbias_part[b, d]
        for i in range(length - 1, -1, -1):  # the adjoint, backwards in time
            l = first + i
            ul = u[b, d, l]
            dl = delta[b, d, l]
            du = dl * ul
            g = grad_out[b, d, l]  # becomes dL/dy_l, y_l = <C_l, h_l> + D u_l, through the gate
            if has_z:
                zl, sz = z[b, d, l], sig_z[b, d, l]
                g_gate = g
                g = g * zl * sz
            a_l, h_prev, h_cur = decays[i], states[i], states[i + 1]
            b_row, dB_row = Bt[b, b_g, l * b_step], dBt[b, b_g, l * b_step]
            c_row, dC_row = Ct[b, c_g, l * c_step], dCt[b, c_g, l * c_step]
            # One loop over n for the whole adjoint step: LLVM vectorises it (issue 12: the backward
            # at the preset took 30 ms against 44 ms with the six short loops it replaced, which had
            # been the faster form when the kernels ran on OpenMP threads in issue 5).
            y = a_row[0] * np.float32(0.0)
            g_dot_b = a_row[0] * np.float32(0.0)
            g_log_a = a_row[0] * np.float32(0.0)
            for n in range(n_state):
                Gn = carry[n] + c_row[n] * g  # G_l = C_l g_l + a_{l+1} G_{l+1}
                hc = h_cur[n]
                an = a_l[n]
                dC_row[n] += g * hc
                y += c_row[n] * hc
                dB_row[n] += du * Gn
                g_dot_b += Gn * b_row[n]
                t = Gn * h_prev[n] * an  # dL/d(delta_l A[n]) through a_l
                dA_row[n] += dl * t
                g_log_a += t * a_row[n]
                carry[n] = an * Gn
            if has_z:  # d silu(z)/dz = s (1 + z (1 - s))
                dz_out[b, d, l] = g_gate * (y + D[d] * ul) * sz * (np.float32(1.0) + zl * (np.float32(1.0) - sz))
            dD += g * ul
            du_out[b, d, l] = g_dot_b * dl + g * D[d]
            g_delta = g_dot_b * ul + g_log_a
            if softplus:
                g_delta *= sig_raw[b, d, l]
            ddelta_out[b, d, l] = g_delta
            dbias += g_delta
        dD_part[b, d] = dD
        dbias_part[b, d] = dbias
        grad_first[b, d] = carry  # a_first G_first = dL/dh_before


# Channels per block in `_backward_pairs`: 16 float32 are one 64-byte cache line.
CHANNEL_BLOCK = 16


@njit(**_KERNEL_JIT)
def _backward_pairs(b, A, D, has_z, softplus, first, stop, u, delta, z, sig_z, sig_raw, Bt, Ct, grad_out,
                    h_before, grad_last, du_out, ddelta_out, dz_out, dA_part, dD_part, dbias_part, dBt, dCt,
                    grad_first, states, decays, carry):
    """The backward for batch element b, every channel, two channels (d0, d1) at a time: their
    adjoint steps share one loop over n, so each row of B, C, dB and dC is read and written once
    for both (issue 12: the backward at the preset took 29 ms against 31 ms one channel at a time,
    in one process back to back). With an odd d_inner the last channel runs alone: its partner's
    inputs are zeroed.

    The per-(channel, step) inputs and outputs go through a small (step, channel) buffer of
    CHANNEL_BLOCK channels: gathered before the block's pairs run, scattered after. The SSM
    node (numba_ssm) passes them as strided views of (B, L, Di) arrays; read in place, each
    pair then touched a cache line of 16 channels in every array at every step, and the 30 KB
    slabs of nine arrays had to stay cached across eight pairs: the backward at the preset took
    20-23 ms in most processes and 28-35 ms in about one in seven (issue 12). With the block both
    layouts read whole lines: 22-25 ms strided in 20 processes out of 20, and 24-27 ms (was 23-31)
    with the plain (B, Di, L) arrays, at load about 4.

    Steps first to stop - 1 (`_backward_kernel`): the scratch and the block are indexed by the
    step within them, l; the whole arrays by first + l. The scratch the adjoint loop writes and reads
    (states (2, L + 1, N), decays (2, L, N), carry (2, N)) comes from the caller, as arguments that
    LLVM knows overlap nothing (numba_noalias)."""
    _, d_inner, steps = u.shape
    length = stop - first
    accumulate = stop < steps  # the chunks after these steps ran first: their sums go on
    n_state = A.shape[1]
    b_per, b_step = _layout(Bt, d_inner, steps)
    c_per, c_step = _layout(Ct, d_inner, steps)
    zero = A[0, 0] * np.float32(0.0)  # a zero of the input dtype
    # the block's inputs (u, delta, grad_out, z, sig_z, sig_raw) and outputs (du, ddelta, dz), [l, j]
    blk_u = np.empty((length, CHANNEL_BLOCK), dtype=u.dtype)
    blk_dl = np.empty((length, CHANNEL_BLOCK), dtype=u.dtype)
    blk_g = np.empty((length, CHANNEL_BLOCK), dtype=u.dtype)
    blk_z = np.zeros((length, CHANNEL_BLOCK), dtype=u.dtype)
    blk_sz = np.zeros((length, CHANNEL_BLOCK), dtype=u.dtype)
    blk_sr = np.zeros((length, CHANNEL_BLOCK), dtype=u.dtype)
    blk_du = np.empty((length, CHANNEL_BLOCK), dtype=u.dtype)
    blk_dd = np.empty((length, CHANNEL_BLOCK), dtype=u.dtype)
    blk_dz = np.zeros((length, CHANNEL_BLOCK), dtype=u.dtype)
    _zero_rows(dBt, b, b_step, first, stop, accumulate)
    _zero_rows(dCt, b, c_step, first, stop, accumulate)
    for lo in range(0, d_inner, CHANNEL_BLOCK):
        width = min(CHANNEL_BLOCK, d_inner - lo)
        for l in range(length):  # gather
            for j in range(width):
                blk_u[l, j] = u[b, lo + j, first + l]
                blk_dl[l, j] = delta[b, lo + j, first + l]
                blk_g[l, j] = grad_out[b, lo + j, first + l]
            if has_z:
                for j in range(width):
                    blk_z[l, j] = z[b, lo + j, first + l]
                    blk_sz[l, j] = sig_z[b, lo + j, first + l]
            if softplus:
                for j in range(width):
                    blk_sr[l, j] = sig_raw[b, lo + j, first + l]
        for p0 in range(0, width, 2):
            pair = min(2, width - p0)
            j0, j1 = p0, p0 + pair - 1  # j1 == j0 when alone
            d0, d1 = lo + j0, lo + j1
            b_g, c_g = d0 // b_per, d0 // c_per  # d1's too (the caller's condition)
            for k in range(pair):  # recompute the forward of each channel
                j, d = j0 + k, d0 + k
                a_row, st, dc = A[d], states[k], decays[k]
                if first > 0:
                    st[0] = h_before[b, d]
                for l in range(length):
                    dl = blk_dl[l, j]
                    du = dl * blk_u[l, j]
                    a_l, h_prev, h_cur, b_row = dc[l], st[l], st[l + 1], Bt[b, b_g, (first + l) * b_step]
                    for n in range(n_state):
                        an = _exp(dl * a_row[n])
                        a_l[n] = an
                        h_cur[n] = an * h_prev[n] + du * b_row[n]
                carry[k, :] = grad_last[b, d]
                _start_sums(dA_part, dD_part, dbias_part, b, d, accumulate)
            if pair == 1:  # a partner that contributes nothing
                states[1] = 0.0
                decays[1] = 0.0
                carry[1] = 0.0
            a0, a1, dA0, dA1, c0, c1 = A[d0], A[d1], dA_part[b, d0], dA_part[b, d1], carry[0], carry[1]
            # the sums so far (chunks later in time), continued in the same order
            dD0, dbias0 = dD_part[b, d0], dbias_part[b, d0]
            dD1, dbias1 = (dD_part[b, d1], dbias_part[b, d1]) if pair == 2 else (zero, zero)
            for l in range(length - 1, -1, -1):  # the adjoint, backwards in time
                ul0, ul1 = blk_u[l, j0], blk_u[l, j1]
                dl0, dl1 = blk_dl[l, j0], blk_dl[l, j1]
                g0, g1 = blk_g[l, j0], blk_g[l, j1]  # become dL/dy_l, y_l = <C_l, h_l> + D u_l
                if pair == 1:
                    dl1, g1 = zero, zero
                du0, du1 = dl0 * ul0, dl1 * ul1
                if has_z:  # through the gate
                    z0, s0, z1, s1 = blk_z[l, j0], blk_sz[l, j0], blk_z[l, j1], blk_sz[l, j1]
                    gate_g0, gate_g1 = g0, g1
                    g0 = g0 * z0 * s0
                    g1 = g1 * z1 * s1
                al0, hp0, hc0 = decays[0, l], states[0, l], states[0, l + 1]
                al1, hp1, hc1 = decays[1, l], states[1, l], states[1, l + 1]
                b_row, dB_row = Bt[b, b_g, (first + l) * b_step], dBt[b, b_g, (first + l) * b_step]
                c_row, dC_row = Ct[b, c_g, (first + l) * c_step], dCt[b, c_g, (first + l) * c_step]
                y0, y1, gb0, gb1, gl0, gl1 = zero, zero, zero, zero, zero, zero
                # One loop over n for the whole adjoint step of both channels: LLVM vectorises it.
                # (Six short loops per channel, the form issue 5 found faster with its threading,
                # took 44 ms here; one loop per channel 31 ms; this 29 ms.)
                for n in range(n_state):
                    cn, bn = c_row[n], b_row[n]
                    G0 = c0[n] + cn * g0  # G_l = C_l g_l + a_{l+1} G_{l+1}
                    G1 = c1[n] + cn * g1
                    h0, h1 = hc0[n], hc1[n]
                    dC_row[n] += g0 * h0 + g1 * h1
                    dB_row[n] += du0 * G0 + du1 * G1
                    y0 += cn * h0
                    y1 += cn * h1
                    gb0 += G0 * bn  # <G_l, B_l>
                    gb1 += G1 * bn
                    e0, e1 = al0[n], al1[n]
                    t0 = G0 * hp0[n] * e0  # dL/d(delta_l A[n]) through a_l
                    t1 = G1 * hp1[n] * e1
                    dA0[n] += dl0 * t0
                    dA1[n] += dl1 * t1
                    gl0 += t0 * a0[n]
                    gl1 += t1 * a1[n]
                    c0[n] = e0 * G0
                    c1[n] = e1 * G1
                for k in range(pair):
                    j, d = j0 + k, d0 + k
                    ul, dl, g, y, g_dot_b, g_log_a = ((ul0, dl0, g0, y0, gb0, gl0) if k == 0
                                                      else (ul1, dl1, g1, y1, gb1, gl1))
                    if has_z:  # d silu(z)/dz = s (1 + z (1 - s))
                        zl, sz, g_gate = (z0, s0, gate_g0) if k == 0 else (z1, s1, gate_g1)
                        blk_dz[l, j] = g_gate * (y + D[d] * ul) * sz * (np.float32(1.0) + zl * (np.float32(1.0) - sz))
                    blk_du[l, j] = g_dot_b * dl + g * D[d]
                    g_delta = g_dot_b * ul + g_log_a
                    if softplus:
                        g_delta *= blk_sr[l, j]
                    blk_dd[l, j] = g_delta
                    if k == 0:
                        dD0 += g * ul
                        dbias0 += g_delta
                    else:
                        dD1 += g * ul
                        dbias1 += g_delta
            dD_part[b, d0] = dD0
            dbias_part[b, d0] = dbias0
            grad_first[b, d0] = c0  # a_first G_first = dL/dh_before
            if pair == 2:
                dD_part[b, d1] = dD1
                dbias_part[b, d1] = dbias1
                grad_first[b, d1] = c1
        for l in range(length):  # scatter
            for j in range(width):
                du_out[b, lo + j, first + l] = blk_du[l, j]
                ddelta_out[b, lo + j, first + l] = blk_dd[l, j]
            if has_z:
                for j in range(width):
                    dz_out[b, lo + j, first + l] = blk_dz[l, j]


# --- autograd wrapper ------------------------------------------------------------------------


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


@functools.cache
def _pool(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="dema-scan")


def _over_batch_slices(kernel, shared: list, batched: list[np.ndarray]) -> None:
    """Run `kernel(*shared, *batched)` on slices of the batch, one per torch thread, in parallel."""
    batch = batched[0].shape[0]
    threads = max(1, min(torch.get_num_threads(), batch))
    bounds = np.linspace(0, batch, threads + 1).astype(int)

    def run(lo, hi):
        kernel(*shared, *[a[lo:hi] for a in batched])  # views: C-contiguous slices of C-contiguous arrays

    if threads == 1:
        run(0, batch)
        return
    futures = [_pool(threads - 1).submit(run, lo, hi) for lo, hi in zip(bounds[1:-1], bounds[2:])]
    run(bounds[0], bounds[1])  # this thread takes the first slice
    for future in futures:
        future.result()


def _no_starts(u: np.ndarray) -> np.ndarray:
    """The forward kernel's `starts` where none are kept (chunk 0): an empty (B, 0, 1, 1) array."""
    return np.empty((u.shape[0], 0, 1, 1), dtype=u.dtype)


def _forward_keeping_starts(shared: list, u, step, gate, Bt, Ct, out, last) -> tuple[np.ndarray, int]:
    """The training forward (from a zero state): `_forward_kernel` over the batch slices, keeping the
    state at the start of each of the backward's chunks. Returns (starts (B, chunks, Di, N), chunk
    length); one chunk keeps nothing ((B, 0, 1, 1))."""
    batch, d_inner, length = u.shape
    d_state = shared[0].shape[1]
    chunk = chunk_steps(length, d_state, u.itemsize)
    chunks = -(-length // chunk)
    starts = (np.empty((batch, chunks, d_inner, d_state), dtype=u.dtype) if chunks > 1 else _no_starts(u))
    _over_batch_slices(_forward_kernel, [*shared, False, chunk if chunks > 1 else 0],
                       [u, step, gate, Bt, Ct, last, out, last, starts])  # h0 (here `last`) unread
    return starts, chunk


def _backward_over_chunks(shared: list, inputs: list, starts: np.ndarray, chunk: int, grad_last: np.ndarray,
                          outputs: list) -> None:
    """`_backward_kernel` over the batch slices, chunk by chunk from the last: each starts from its
    state in `starts` (`_forward_keeping_starts`) and hands dL/dh at its start to the chunk before.
    inputs: u, delta, z, sig_z, sig_raw, Bt, Ct, grad_out; outputs: du, ddelta, dz, then the
    sums over the chunks dA_part, dD_part, dbias_part, dBt, dCt."""
    length = inputs[0].shape[2]
    carries = [np.empty_like(grad_last), np.empty_like(grad_last)]  # dL/dh at a chunk's start, in turn
    carry = grad_last
    for k, first in enumerate(range((length - 1) // chunk * chunk, -1, -chunk)):
        c = first // chunk
        # (B, Di, N), C-contiguous like grad_last: one compiled kernel; chunk 0 starts from zero (unread)
        h0 = np.ascontiguousarray(starts[:, c]) if c > 0 else grad_last
        _over_batch_slices(_backward_kernel, [*shared, first, min(length, first + chunk)],
                           [*inputs, h0, carry, *outputs, carries[k % 2]])
        carry = carries[k % 2]


def _step_size(delta, delta_bias, softplus):
    """delta (+ bias) (-> softplus): in PyTorch (vectorised), outside autograd."""
    raw = delta if delta_bias is None else delta + delta_bias[:, None]
    return F.softplus(raw) if softplus else raw, raw


def _pairs_share_rows(d_inner: int, Bt: torch.Tensor, Ct: torch.Tensor) -> bool:
    """Whether the pairs backward may run: its pairs (d, d + 1), d even, must read the same B and C
    rows, i.e. one group, or groups of an even number of channels (time-invariant: one each)."""
    return all(X.shape[1] == 1 or (d_inner // X.shape[1]) % 2 == 0 for X in (Bt, Ct))


def _pairs_on_contiguous(d_inner: int, Bt: torch.Tensor, Ct: torch.Tensor, chunk: int, length: int) -> bool:
    """The pairs form for `_NumbaScan`'s contiguous (B, Di, L) arrays: where the rows allow, and only
    for a sequence of one chunk. Its channel-block gather pays on the SSM node's strided views, not
    here: at 3000 steps one channel at a time was as fast or faster (docs/PERFORMANCE.md, "Long
    sequences")."""
    return _pairs_share_rows(d_inner, Bt, Ct) and chunk >= length


class _NumbaScan(torch.autograd.Function):
    """(u, delta, A, Bt, Ct, D, z, delta_bias) -> (out, last state), the whole of mamba-ssm's scan;
    Bt, Ct are rows (B, G, L or 1, N) (`_rows`), all tensors of one float32 or float64 dtype.

    The step size softplus(delta + bias) and the gate silu(z) are evaluated by PyTorch's vectorised
    kernels (no autograd nodes); the Numba kernels take them as inputs, because libm's scalar
    exp/log1p per (b, d, l) inside the sequential loop cost more than the scan (measured)."""

    @staticmethod
    def forward(ctx, u, delta, A, Bt, Ct, D, z, delta_bias, softplus):
        step, _ = _step_size(delta, delta_bias, softplus)
        D_ = u.new_zeros(u.shape[1]) if D is None else D
        gate = u if z is None else F.silu(z)  # never read when there is no z
        out = torch.empty_like(u, memory_format=torch.contiguous_format)
        last = u.new_empty(u.shape[0], u.shape[1], A.shape[1])
        starts, ctx.chunk = _forward_keeping_starts([_np(A), _np(D_), z is not None], _np(u), _np(step), _np(gate),
                                                    _np(Bt), _np(Ct), out.numpy(), last.numpy())
        ctx.save_for_backward(u, delta, A, Bt, Ct, D_, z, delta_bias, torch.from_numpy(starts))
        ctx.flags = (D is not None, bool(softplus))
        return out, last

    @staticmethod
    def backward(ctx, grad_out, grad_last):
        u, delta, A, Bt, Ct, D_, z, delta_bias, starts = ctx.saved_tensors
        has_D, softplus = ctx.flags
        has_z = z is not None
        if grad_out is None:
            grad_out = torch.zeros_like(u)
        if grad_last is None:
            grad_last = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
        step, raw = _step_size(delta, delta_bias, softplus)
        sig_raw = torch.sigmoid(raw) if softplus else u  # softplus' derivative; unused without softplus
        z_, sig_z = (z, torch.sigmoid(z)) if has_z else (u, u)  # unused without z
        du, ddelta, dz = torch.empty_like(u), torch.empty_like(u), torch.empty_like(u)
        dA_part = u.new_empty(u.shape[0], *A.shape)  # (B, Di, N)
        dD_part, dbias_part = u.new_empty(u.shape[:2]), u.new_empty(u.shape[:2])  # (B, Di)
        dBt, dCt = torch.empty_like(Bt), torch.empty_like(Ct)
        inputs = [_np(u), _np(step), _np(z_), _np(sig_z), _np(sig_raw), _np(Bt), _np(Ct), _np(grad_out)]
        outputs = [du.numpy(), ddelta.numpy(), dz.numpy(), dA_part.numpy(), dD_part.numpy(), dbias_part.numpy(),
                   dBt.numpy(), dCt.numpy()]
        shared = [_np(A), _np(D_), has_z, softplus, _pairs_on_contiguous(u.shape[1], Bt, Ct, ctx.chunk, u.shape[2])]
        _backward_over_chunks(shared, inputs, starts.numpy(), ctx.chunk, _np(grad_last), outputs)
        return (du, ddelta, dA_part.sum(0), dBt, dCt,
                dD_part.sum(0) if has_D else None, dz if has_z else None,
                dbias_part.sum(0) if delta_bias is not None else None, None)


def supports(u: torch.Tensor) -> bool:
    """Where the dispatcher takes this kernel: float32/float64 CPU tensors, contiguous or not. Called
    directly it takes half and bfloat16 too (scanned in float32), but dema.models' SSM node,
    which follows this choice, runs the kernels on the model's own dtype."""
    return u.device.type == "cpu" and u.dtype in (torch.float32, torch.float64)


def _rows(X: torch.Tensor, form: Operand, batch: int) -> torch.Tensor:
    """B or C as the kernels read them, (B, G, L or 1, N) C-contiguous. Differentiable torch ops:
    autograd maps the kernels' gradient (same shape) back to X's form."""
    if form.kind == TIME_INVARIANT:
        # one row per channel, repeated over the batch (Di N floats per element, as dA's partials):
        # each batch slice on the thread pool then owns its rows of dB and dC; autograd sums them
        return X[None, :, None, :].expand(batch, -1, 1, -1).contiguous()  # (Di, N) -> (B, Di, 1, N)
    return grouped_view(X, form).transpose(2, 3).contiguous()  # (B, G, N, L) -> (B, G, L, N)


def _prepare(u, delta, A, B, C, D, z, delta_bias, initial_state=None):
    """Checked (dema.scan.contract), cast to the compute dtype, B and C as rows."""
    B_form, C_form = check(u, delta, A, B, C, D, z, delta_bias, initial_state)
    dtype = compute_dtype(u, delta, A, B, C, D, z, delta_bias, initial_state)
    u, delta, A, B, C, D, z, delta_bias, h0 = cast_inputs(dtype, u, delta, A, B, C, D, z, delta_bias,
                                                          initial_state)
    return u, delta, A, _rows(B, B_form, u.shape[0]), _rows(C, C_form, u.shape[0]), D, z, delta_bias, h0


def selective_scan_numba(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False
):
    """Same signature and results as `selective_scan_ref`; see the module docstring."""
    out_dtype = u.dtype
    u, delta, A, Bt, Ct, D, z, delta_bias, _ = _prepare(u, delta, A, B, C, D, z, delta_bias)
    out, last = _NumbaScan.apply(u, delta, A, Bt, Ct, D, z, delta_bias, delta_softplus)
    out = out.to(out_dtype)
    return (out, last) if return_last_state else out


@torch.no_grad()
def selective_scan_numba_from_state(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                                    initial_state=None):
    """Inference only: the scan continued from `initial_state` (B, Di, N) -> (out, last state)."""
    out_dtype = u.dtype
    u, delta, A, Bt, Ct, D, z, delta_bias, h0 = _prepare(u, delta, A, B, C, D, z, delta_bias, initial_state)
    step, _ = _step_size(delta, delta_bias, delta_softplus)
    D_ = u.new_zeros(u.shape[1]) if D is None else D
    gate = u if z is None else F.silu(z)
    out = torch.empty_like(u, memory_format=torch.contiguous_format)
    last = u.new_empty(u.shape[0], u.shape[1], A.shape[1])
    _over_batch_slices(_forward_kernel, [_np(A), _np(D_), z is not None, h0 is not None, 0],
                       [_np(u), _np(step), _np(gate), _np(Bt), _np(Ct), _np(last if h0 is None else h0),
                        out.numpy(), last.numpy(), _no_starts(_np(u))])
    return out.to(out_dtype), last
