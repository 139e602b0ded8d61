"""The SSM node: the whole SelectiveSSM as one autograd node on the CPU (conv, x_proj, dt_proj, scan).

`SelectiveSSM.forward` in PyTorch (dema.models.mamba, the reference this is tested against) is

    x (B, L, Di) -> transpose -> * mask -> depthwise causal conv1d -> SiLU -> * mask -> u (B, Di, L)
    u -> transpose -> x_proj -> (dt, B, C) -> dt_proj -> transpose -> delta (B, Di, L);
    B, C -> transpose -> contiguous (B, N, L) -> [the scan transposes them back to (B, L, N)]
    y = scan(u, delta, A, B, C, D, z, delta_bias, softplus) (B, Di, L) -> transpose -> (B, L, Di)

At the hopper preset (batch 64, 60 tokens, Di 128) each of those (B, Di, L) <-> (B, L, Di)
transposes is a strided copy, and the depthwise conv's backward in PyTorch (oneDNN) is slow;
together with the autograd bookkeeping that was about a fifth of DeMa's training step
(docs/PERFORMANCE.md, "The training step"). Here:

- everything stays in the (B, L, Di) layout the linear layers use. The scan kernels of
  `numba_scan` index u, delta, z and their gradients element by element, so they take
  transposed (strided) NumPy views of (B, L, Di) arrays as their (B, Di, L) inputs: no copies;
  only their inner loops over the N states must be contiguous, and those read B and C rows.
- the causal depthwise conv, its mask and the SiLU are one Numba kernel each way (vectorised
  over channels), recomputing the pre-activation in the backward;
- x_proj and dt_proj are PyTorch matmuls inside the node, so the gradient of x_proj's output
  (dt, B, C) is written into one buffer instead of being concatenated by autograd;
- with the Mamba block's gate, the node takes in_proj's output (x, z) whole and writes the
  gradients of both halves into one buffer (no concatenation either).

The numerics are the reference's up to float rounding (the conv's sum order, addmm's bias):
tests/models/test_ssm_node.py checks outputs and the gradients of every input and parameter
against the plain PyTorch forward, float64 to 1e-10 and float32 to 1e-4. The compute paths'
ssm="ref" (DEMA_SSM=ref, dema.scan.paths) turn this node off (the plain PyTorch forward with the
same Numba scan inside).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit

from dema.scan.numba_scan import _KERNEL_JIT, _backward_over_chunks, _exp, _forward_keeping_starts, _over_batch_slices


# --- the causal depthwise conv + SiLU, (B, L, Di) layout ---------------------------------------

# error_model="numpy": a float division by zero gives inf, as in NumPy, instead of Numba's Python
# ZeroDivisionError check, which kept the SiLU's division from vectorising (1.3 ms against 0.1 ms).
_JIT_DIV = dict(_KERNEL_JIT, error_model="numpy")  # and noalias: numba_noalias


@njit(**_JIT_DIV)
def _conv_pre(Wt, bias, xz, mask, b, l, out):
    """The conv's pre-activation of token l of batch element b into out (Di,): bias plus the W taps
    over the masked x of tokens l-W+1 .. l (tap W-1 on token l)."""
    width, d_inner = Wt.shape
    out[:] = bias
    for k in range(width):
        src = l - width + 1 + k
        if src >= 0:
            m = mask[b, src]
            w_row, x_row = Wt[k], xz[b, src, :d_inner]
            for d in range(d_inner):
                out[d] += w_row[d] * (x_row[d] * m)


@njit(**_JIT_DIV)
def _conv_silu_forward(Wt, bias, xz, mask, u):
    """Wt (W, Di) the conv taps (tap W-1 on the current token), bias (Di,); xz (B, L, >= Di) whose
    first Di columns are x; mask (B, L) 1.0 / 0.0. Writes u = silu(conv(x * mask)) * mask (B, L, Di)."""
    batch, length, d_inner = u.shape
    one = bias[0] * np.float32(0.0) + np.float32(1.0)  # a one of the input dtype (float32 * int is float64)
    for b in range(batch):
        for l in range(length):
            out = u[b, l]
            _conv_pre(Wt, bias, xz, mask, b, l, out)
            m = mask[b, l]
            for d in range(d_inner):
                p = out[d]
                out[d] = p / (one + _exp(-p)) * m


@njit(**_JIT_DIV)
def _conv_silu_backward(Wt, bias, xz, mask, gu, dxz, dW_part, dbias_part):
    """Adjoint of `_conv_silu_forward`: gu (B, L, Di) in; writes the first Di columns of dxz
    (B, L, >= Di) and per-batch partials dW_part (B, W, Di), dbias_part (B, Di)."""
    batch, length, d_inner = gu.shape
    width = Wt.shape[0]
    one = bias[0] * np.float32(0.0) + np.float32(1.0)
    gpre = np.empty((length, d_inner), dtype=gu.dtype)  # dL/d(pre-activation) of one batch element
    for b in range(batch):
        dW, db = dW_part[b], dbias_part[b]
        dW[:] = 0
        db[:] = 0
        for l in range(length):
            g = gpre[l]
            _conv_pre(Wt, bias, xz, mask, b, l, g)  # the pre-activation again
            m = mask[b, l]
            g_row = gu[b, l]
            for d in range(d_inner):  # d silu(p)/dp = s (1 + p (1 - s))
                p = g[d]
                s = one / (one + _exp(-p))
                gp = g_row[d] * m * s * (one + p * (one - s))
                g[d] = gp
                db[d] += gp
        for src in range(length):
            dx = dxz[b, src, :d_inner]
            dx[:] = 0
            m = mask[b, src]
            x_row = xz[b, src, :d_inner]
            for k in range(width):
                l = src + width - 1 - k
                if l < length:
                    w_row, g, dW_k = Wt[k], gpre[l], dW[k]
                    for d in range(d_inner):
                        dx[d] += w_row[d] * g[d]
                        dW_k[d] += g[d] * (x_row[d] * m)
            for d in range(d_inner):
                dx[d] *= m


# --- the node --------------------------------------------------------------------------------


def _t(a: torch.Tensor) -> np.ndarray:
    """(B, L, Di) tensor -> (B, Di, L) NumPy view (strided), as the scan kernels index them."""
    return a.detach().numpy().transpose(0, 2, 1)


def _rows(a: torch.Tensor) -> np.ndarray:
    """(B, L, N) B or C (or its gradient) -> (B, 1, L, N) NumPy view: the scan kernels' rows of one
    group shared by every channel (numba_scan's input-dependent form)."""
    return a.detach().numpy()[:, None]


class _SSMNode(torch.autograd.Function):
    """(xz, mask, conv weight, conv bias, x_proj weight, dt_proj weight, dt bias, A, D) -> y (B, L, Di).

    xz (B, L, Di) is x, or (B, L, 2 Di) is x and the gate z side by side (in_proj's output).
    A, D and the dt bias come in as the reference computes them (-exp(A_log) etc.)."""

    @staticmethod
    def forward(ctx, xz, mask, conv_w, conv_b, xproj_w, dt_w, dt_b, A, D, has_z):
        d_inner = conv_w.shape[0]
        dt_rank, d_state = dt_w.shape[1], A.shape[1]
        xz = xz.contiguous()
        batch, length = xz.shape[:2]
        mask_f = (xz.new_ones(batch, length) if mask is None else mask.to(xz.dtype)).contiguous()
        Wt = conv_w.detach()[:, 0, :].T.contiguous()  # (W, Di)
        u = xz.new_empty(batch, length, d_inner)
        _over_batch_slices(_conv_silu_forward, [Wt.numpy(), conv_b.detach().numpy()],
                           [xz.detach().numpy(), mask_f.numpy(), u.numpy()])
        x_dbl = F.linear(u, xproj_w)  # (B, L, R + 2N)
        raw = F.linear(x_dbl[..., :dt_rank], dt_w, dt_b)  # (B, L, Di): delta + bias before softplus
        step = F.softplus(raw)
        Bt = x_dbl[..., dt_rank:dt_rank + d_state].contiguous()  # (B, L, N)
        Ct = x_dbl[..., dt_rank + d_state:].contiguous()
        z = xz[..., d_inner:] if has_z else None
        gate = F.silu(z) if has_z else u  # never read without z
        y = xz.new_empty(batch, length, d_inner)
        last = xz.new_empty(batch, d_inner, d_state)  # h_{L-1}: not returned
        starts, ctx.chunk = _forward_keeping_starts([A.detach().numpy(), D.detach().numpy(), has_z], _t(u), _t(step),
                                                    _t(gate), _rows(Bt), _rows(Ct), _t(y), last.numpy())
        ctx.save_for_backward(xz, mask_f, conv_w, conv_b, xproj_w, dt_w, A, D, u, x_dbl, raw, step, Bt, Ct,
                              torch.from_numpy(starts))
        ctx.has_z = has_z
        return y

    @staticmethod
    def backward(ctx, gy):
        xz, mask_f, conv_w, conv_b, xproj_w, dt_w, A, D, u, x_dbl, raw, step, Bt, Ct, starts = ctx.saved_tensors
        has_z = ctx.has_z
        d_inner, width = conv_w.shape[0], conv_w.shape[2]
        dt_rank, d_state = dt_w.shape[1], A.shape[1]
        batch, length = xz.shape[:2]
        gy = gy.contiguous()
        sig_raw = torch.sigmoid(raw)  # softplus' derivative
        z = xz[..., d_inner:] if has_z else u
        sig_z = torch.sigmoid(z) if has_z else u  # unused without z
        dxz = torch.empty_like(xz)
        du, ddelta = torch.empty_like(u), torch.empty_like(u)
        dz = dxz[..., d_inner:] if has_z else torch.empty_like(u)
        dA_part = u.new_empty(batch, *A.shape)  # (B, Di, N)
        dD_part, dbias_part = u.new_empty(batch, d_inner), u.new_empty(batch, d_inner)
        dBt, dCt = torch.empty_like(Bt), torch.empty_like(Ct)
        grad_last = u.new_zeros(batch, d_inner, d_state)
        # B and C are one group of rows shared by every channel, so the pairs form always runs
        shared = [A.detach().numpy(), D.detach().numpy(), has_z, True, True]
        _backward_over_chunks(shared, [_t(u), _t(step), _t(z), _t(sig_z), _t(sig_raw), _rows(Bt), _rows(Ct), _t(gy)],
                              starts.numpy(), ctx.chunk, grad_last.numpy(),
                              [_t(du), _t(ddelta), _t(dz), dA_part.numpy(), dD_part.numpy(), dbias_part.numpy(),
                               _rows(dBt), _rows(dCt)])
        # dt_proj and x_proj, by hand: the gradient of x_proj's output (dt, B, C) in one buffer
        flat = batch * length
        dx_dbl = torch.empty_like(x_dbl)
        dd = ddelta.view(flat, d_inner)
        dx_dbl[..., :dt_rank] = (dd @ dt_w).view(batch, length, dt_rank)
        dx_dbl[..., dt_rank:dt_rank + d_state] = dBt
        dx_dbl[..., dt_rank + d_state:] = dCt
        d_dt_w = dd.T @ x_dbl.view(flat, -1)[:, :dt_rank]
        g_dbl = dx_dbl.view(flat, -1)
        d_xproj_w = g_dbl.T @ u.view(flat, d_inner)
        du.view(flat, d_inner).addmm_(g_dbl, xproj_w)  # + the gradient through x_proj
        # the conv + SiLU
        Wt = conv_w.detach()[:, 0, :].T.contiguous()
        dW_part = u.new_empty(batch, width, d_inner)
        dcb_part = u.new_empty(batch, d_inner)
        _over_batch_slices(_conv_silu_backward, [Wt.numpy(), conv_b.detach().numpy()],
                           [xz.detach().numpy(), mask_f.numpy(), du.numpy(), dxz.numpy(), dW_part.numpy(),
                            dcb_part.numpy()])
        d_conv_w = dW_part.sum(0).T.reshape(d_inner, 1, width)
        return (dxz, None, d_conv_w, dcb_part.sum(0), d_xproj_w, d_dt_w, dbias_part.sum(0), dA_part.sum(0),
                dD_part.sum(0), None)


def ssm_node(xz, mask, conv_w, conv_b, xproj_w, dt_w, dt_b, A, D, has_z: bool):
    """y (B, L, Di) of the SelectiveSSM on xz = x (B, L, Di), or [x, z] (B, L, 2 Di) when has_z."""
    return _SSMNode.apply(xz, mask, conv_w, conv_b, xproj_w, dt_w, dt_b, A, D, has_z)
