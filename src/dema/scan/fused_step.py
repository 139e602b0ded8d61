"""The fused acting step: a Mamba policy's whole decision as one Numba call, on the CPU.

`SequencePolicy.step` pushes an environment step's tokens (R_t, a_{t-1}, s_t) through every layer
with PyTorch: some 150 small calls per decision, each costing microseconds of dispatch, while the
arithmetic of a decision of the hopper preset (3 layers, d_model 64, Di 128, N 64) is well under a
million multiply-adds. `decide` is the same computation as one compiled function over all layers:

    embeddings (+ timestep embedding, embedding norm) -> input projection ->
    per layer: RMSNorm -> in_proj -> causal conv over the cached inputs -> SiLU -> x_proj ->
               dt_proj + bias -> softplus -> selective scan from the cached state -> D skip ->
               SiLU(z) gate -> out_proj -> residual
    final RMSNorm -> head -> tanh

with the cache (`FusedCache`) in preallocated float32 arrays updated in place (conv inputs
(L, B, W-1, Di), SSM states (L, B, N, Di)). This module is the kernel, on arrays only; which
policies it covers and how their weights become those arrays is `dema.models.fused_step`
(`FusedRecurrentStep`), and whether acting takes it is the compute paths' `fused_step`
(DEMA_FUSED_STEP, dema.scan.paths).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from dema.scan.numba_scan import _exp

_JIT = dict(fastmath=True, cache=True, nogil=True)
_F32 = np.float32


# Weights are stored transposed, (in, out), and every inner loop runs over a row of outputs or of
# channels, so LLVM vectorises it with no horizontal reduction. (The dot-product form, one
# reduction per output and a scan loop over the N states, took 109 us per decision at the hopper
# preset; this form 51 us, on the loaded machine of docs/PERFORMANCE.md.)


@njit(**_JIT)
def _linear(Wt, b, has_b, x, out):
    """out (T, O) = x (T, I) @ Wt (I, O) (+ b): axpy form, each weight row read once for all T."""
    T = x.shape[0]
    I, O = Wt.shape
    for t in range(T):
        if has_b:
            out[t, :] = b
        else:
            out[t, :] = _F32(0.0)
    for i in range(I):
        row = Wt[i]
        for t in range(T):
            xi = x[t, i]
            o_t = out[t]
            for o in range(O):
                o_t[o] += row[o] * xi


@njit(**_JIT)
def _rms_norm(x, w, out):
    T, D = x.shape
    for t in range(T):
        ss = _F32(0.0)
        for i in range(D):
            ss += x[t, i] * x[t, i]
        scale = _F32(1.0) / np.sqrt(ss / _F32(D) + _F32(1e-5))
        for i in range(D):
            out[t, i] = x[t, i] * scale * w[i]


@njit(**_JIT)
def _layer_norm(x, w, b, eps):
    """In place on a vector."""
    n = x.shape[0]
    mean = _F32(0.0)
    for i in range(n):
        mean += x[i]
    mean /= _F32(n)
    var = _F32(0.0)
    for i in range(n):
        var += (x[i] - mean) * (x[i] - mean)
    scale = _F32(1.0) / np.sqrt(var / _F32(n) + eps)
    for i in range(n):
        x[i] = (x[i] - mean) * scale * w[i] + b[i]


@njit(inline="always", fastmath=True)
def _silu(x):
    return x / (_F32(1.0) + _exp(-x))


@njit(inline="always", fastmath=True)
def _softplus(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(e), e = exp(-|x|) in (0, 1]; log1p(e) = 2 atanh(s) with
    s = e / (2 + e) in (0, 1/3], a series to s^13 (relative error < 1e-8): plain arithmetic that
    vectorises, and exact for tiny e (no 1 + e rounding)."""
    e = _exp(-abs(x))
    s = e / (_F32(2.0) + e)
    s2 = s * s
    p = _F32(1.0 / 13.0)
    p = p * s2 + _F32(1.0 / 11.0)
    p = p * s2 + _F32(1.0 / 9.0)
    p = p * s2 + _F32(1.0 / 7.0)
    p = p * s2 + _F32(1.0 / 5.0)
    p = p * s2 + _F32(1.0 / 3.0)
    p = p * s2 + _F32(1.0)
    return max(x, _F32(0.0)) + _F32(2.0) * s * p


@njit(**_JIT)
def _embed(wt, bias, inp, one, emb, out):
    """out (E,) = inp (I,) @ wt (I, E) + bias."""
    n_in = inp.shape[0]
    for i in range(n_in):
        one[0, i] = inp[i]
    _linear(wt[:n_in], bias, True, one[:, :n_in], emb)
    out[:] = emb[0]


@njit(**_JIT)
def decide(states, prev_actions, rtgs, timesteps, firsts, fresh,
            es_w, es_b, er_w, er_b, ea_w, ea_b, time_table, has_time, en_w, en_b, has_norm,
            proj_w, proj_b, has_proj, b3ld,
            norm_w, in_w, conv_w, conv_b, x_w, dt_w, dt_b, A, D_skip, out_w,
            fnorm_w, head_w, head_b,
            conv_cache, ssm_cache, actions):
    """One decision per batch row b from its steps firsts[b]..K-1: states (B, K, S), prev_actions
    (B, K, A), rtgs (B, K, 1), timesteps (B, K). The steps' tokens go through every layer from the
    row's cache, conv_cache (L, B, W-1, Di) and ssm_cache (L, B, N, Di), updated in place (zeroed
    first when `fresh`: a window read from the start). Weights (in, out); A (L, N, Di); conv_w
    (L, W, Di). The decision is read at the last token (s_t of the last step)."""
    batch, n_steps = states.shape[0], states.shape[1]
    E = es_w.shape[1]
    n_layer, D = norm_w.shape
    width, d_inner = conv_w.shape[1], conv_w.shape[2]
    n_state = A.shape[1]
    dt_rank = dt_w.shape[1]
    per_step = 3 if b3ld else 1
    parts = np.empty((3, E), dtype=np.float32)
    delta = np.empty(d_inner, dtype=np.float32)
    du = np.empty(d_inner, dtype=np.float32)
    acc = np.empty(d_inner, dtype=np.float32)
    one = np.empty((1, max(states.shape[2], prev_actions.shape[2], 1)), dtype=np.float32)
    emb = np.empty((1, E), dtype=np.float32)
    last = np.empty((1, D), dtype=np.float32)
    out = np.empty((1, head_w.shape[1]), dtype=np.float32)
    for b in range(batch):
        first = firsts[b]
        T = (n_steps - first) * per_step
        tokens = np.empty((T, 3 * E // per_step), dtype=np.float32)
        x = np.empty((T, D), dtype=np.float32)
        xn = np.empty((T, D), dtype=np.float32)
        xz = np.empty((T, 2 * d_inner), dtype=np.float32)
        u = np.empty((T, d_inner), dtype=np.float32)
        xdbl = np.empty((T, dt_rank + 2 * n_state), dtype=np.float32)
        y = np.empty((T, d_inner), dtype=np.float32)
        res = np.empty((T, D), dtype=np.float32)
        window = np.empty((width - 1 + T, d_inner), dtype=np.float32)
        if fresh:
            conv_cache[:, b] = _F32(0.0)
            ssm_cache[:, b] = _F32(0.0)
        # 1. embeddings, in token order R_t, a_{t-1}, s_t per step
        for k in range(first, n_steps):
            _embed(er_w, er_b, rtgs[b, k], one, emb, parts[0])
            _embed(ea_w, ea_b, prev_actions[b, k], one, emb, parts[1])
            _embed(es_w, es_b, states[b, k], one, emb, parts[2])
            if has_time:
                t_row = min(max(timesteps[b, k], 0), time_table.shape[0] - 1)
                for j in range(3):
                    parts[j] += time_table[t_row]
            if has_norm:
                for j in range(3):
                    _layer_norm(parts[j], en_w, en_b, _F32(1e-5))
            row = (k - first) * per_step
            if b3ld:
                tokens[row:row + 3] = parts
            else:
                for j in range(3):
                    tokens[row, j * E:(j + 1) * E] = parts[j]
        if has_proj:
            _linear(proj_w, proj_b, True, tokens, x)
        else:
            x[:] = tokens
        # 2. the Mamba blocks: x + Mamba(RMSNorm(x)), continuing from the cache
        for layer in range(n_layer):
            _rms_norm(x, norm_w[layer], xn)
            _linear(in_w[layer], dt_b[layer], False, xn, xz)  # (T, 2Di): x then z
            # causal depthwise conv over [cached W-1 inputs; the T new ones], then SiLU
            cw, cb, cc = conv_w[layer], conv_b[layer], conv_cache[layer, b]
            window[:width - 1] = cc
            window[width - 1:] = xz[:, :d_inner]
            for t in range(T):
                acc[:] = cb
                for k in range(width):
                    w_k, in_k = cw[k], window[t + k]
                    for d in range(d_inner):
                        acc[d] += in_k[d] * w_k[d]
                for d in range(d_inner):
                    u[t, d] = _silu(acc[d])
            cc[:] = window[T:]
            _linear(x_w[layer], dt_b[layer], False, u, xdbl)  # (T, R + 2N): dt, B, C
            # the selective scan from the cached state, vectorised over the channels
            dw, a_l, h_l, dsk = dt_w[layer], A[layer], ssm_cache[layer, b], D_skip[layer]
            for t in range(T):
                acc[:] = dt_b[layer]
                for r in range(dt_rank):
                    c, w_r = xdbl[t, r], dw[r]
                    for d in range(d_inner):
                        acc[d] += c * w_r[d]
                for d in range(d_inner):
                    delta[d] = _softplus(acc[d])
                    du[d] = delta[d] * u[t, d]
                    acc[d] = _F32(0.0)  # now y_t
                for n in range(n_state):
                    bn, cn = xdbl[t, dt_rank + n], xdbl[t, dt_rank + n_state + n]
                    a_row, h = a_l[n], h_l[n]
                    for d in range(d_inner):
                        hn = _exp(delta[d] * a_row[d]) * h[d] + du[d] * bn
                        h[d] = hn
                        acc[d] += cn * hn
                for d in range(d_inner):
                    y[t, d] = (acc[d] + dsk[d] * u[t, d]) * _silu(xz[t, d_inner + d])
            _linear(out_w[layer], dt_b[layer], False, y, res)
            for t in range(T):
                for i in range(D):
                    x[t, i] += res[t, i]
        # 3. the decision, read at the last token (s_t)
        _rms_norm(x[T - 1:T], fnorm_w, last)
        _linear(head_w, head_b, True, last, out)
        for i in range(out.shape[1]):
            actions[b, i] = np.tanh(out[0, i])


@dataclass
class FusedCache:
    """The recurrent cache as float32 arrays, updated in place by every step."""

    conv: np.ndarray  # (L, B, W-1, Di): the last W-1 inputs of each layer's causal conv
    ssm: np.ndarray  # (L, B, N, Di): each layer's SSM state (SSMCache's, transposed)

