"""The `torch` selective scan: pure PyTorch, vectorised precompute, one tight loop, analytic backward.

Autograd through the reference scan records a handful of nodes per time step and keeps every
intermediate alive. Here the whole recurrence is one autograd node:

forward   a_l = exp(delta_l A), x_l = delta_l u_l B_l   (bulk, (B, Di, L, N))
          h_l = a_l h_{l-1} + x_l                        (loop over L, in place)
          y_l = <C_l, h_l>                                (one einsum)
backward  G_l = dL/dh_l = C_l gy_l + a_{l+1} G_{l+1}      (loop over L, reversed)
          every input gradient is then a bulk einsum of G, h_{l-1}, a and the inputs.

Memory is linear in L: the states h (B, Di, L, N) are kept for the backward pass. The skip, gate,
bias and softplus stay outside the node (cheap elementwise ops that autograd handles well).
B and C take every form of dema.scan.contract (the einsums' subscripts follow the form); half and
bfloat16 inputs are scanned in float32.
"""

from __future__ import annotations

import torch

from dema.scan.contract import (GROUPED, INPUT_DEPENDENT, TIME_INVARIANT, cast_inputs, check, compute_dtype,
                                per_channel)
from dema.scan.reference import apply_skip_and_gate, discretize_delta


# How B or C enters the einsums below, by form: shared by the channels (B, N, L), time-invariant
# (Di, N), or one per channel (B, Di, N, L) (a grouped one, repeated over its group's channels).
_SUBSCRIPTS = {INPUT_DEPENDENT: "bnl", TIME_INVARIANT: "dn", GROUPED: "bdnl"}
_BROADCAST = {
    "bnl": lambda X: X.transpose(1, 2)[:, None],  # (B, N, L) -> (B, 1, L, N)
    "dn": lambda X: X[None, :, None, :],  # (Di, N) -> (1, Di, 1, N)
    "bdnl": lambda X: X.transpose(2, 3),  # (B, Di, N, L) -> (B, Di, L, N)
}


def _times(x, X, sub):
    """x (B, Di, L) times B or C at each step: (B, Di, L, N)."""
    return x[..., None] * _BROADCAST[sub](X)


def _decay_and_drive(u, delta, A, B, sub):
    decay = torch.exp(delta[..., None] * A[:, None, :])  # (B, Di, L, 1) * (Di, 1, N) -> (B, Di, L, N)
    return decay, _times(delta * u, B, sub)


class _SelectiveScanCore(torch.autograd.Function):
    """y_l = <C_l, h_l>, h_l = exp(delta_l A) h_{l-1} + delta_l u_l B_l; no skip, no gate.
    `subs` = (B's, C's) einsum subscripts (_SUBSCRIPTS)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, subs):
        sub_b, sub_c = subs
        decay, states = _decay_and_drive(u, delta, A, B, sub_b)
        for l in range(1, u.shape[-1]):
            states[:, :, l].addcmul_(decay[:, :, l], states[:, :, l - 1])  # h_l = a_l h_{l-1} + x_l
        y = torch.einsum(f"bdln,{sub_c}->bdl", states, C)
        ctx.save_for_backward(u, delta, A, B, C, states)
        ctx.subs = subs
        return y

    @staticmethod
    def backward(ctx, grad_y):
        u, delta, A, B, C, states = ctx.saved_tensors
        sub_b, sub_c = ctx.subs
        decay = torch.exp(delta[..., None] * A[:, None, :])  # recomputed: cheaper than storing it
        # G_l = C_l * gy_l + a_{l+1} * G_{l+1}
        grad_h = _times(grad_y, C, sub_c)  # (B, Di, L, N)
        for l in range(u.shape[-1] - 2, -1, -1):
            grad_h[:, :, l].addcmul_(decay[:, :, l + 1], grad_h[:, :, l + 1])
        grad_C = torch.einsum(f"bdl,bdln->{sub_c}", grad_y, states)
        # d/d(delta_l A) of a_l h_{l-1}: G_l * h_{l-1} * a_l
        prev_states = torch.zeros_like(states)
        prev_states[:, :, 1:] = states[:, :, :-1]
        grad_log_decay = grad_h * prev_states * decay  # (B, Di, L, N)
        grad_A = torch.einsum("bdln,bdl->dn", grad_log_decay, delta)
        grad_B_times = torch.einsum(f"bdln,bdl->{sub_b}", grad_h, delta * u)  # G . (delta u) -> dL/dB
        g_dot_b = torch.einsum(f"bdln,{sub_b}->bdl", grad_h, B)  # sum_n G_l[n] B_l[n]
        grad_u = g_dot_b * delta
        grad_delta = g_dot_b * u + torch.einsum("bdln,dn->bdl", grad_log_decay, A)
        return grad_u, grad_delta, grad_A, grad_B_times, grad_C, None


def _as_operand(X, form, d_inner):
    """B or C and its subscript; a grouped one repeated over its group's channels (autograd sums
    the gradient back), which this path can afford: it materialises (B, Di, L, N) anyway."""
    sub = _SUBSCRIPTS[form.kind]
    return (per_channel(X, form, d_inner) if form.kind == GROUPED else X), sub


def selective_scan_torch(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False
):
    """Same signature and results as `selective_scan_ref`, one autograd node for the recurrence."""
    B_form, C_form = check(u, delta, A, B, C, D, z, delta_bias)
    out_dtype = u.dtype
    dtype = compute_dtype(u, delta, A, B, C, D, z, delta_bias)
    u, delta, A, B, C, D, z, delta_bias = cast_inputs(dtype, u, delta, A, B, C, D, z, delta_bias)
    (B, sub_b), (C, sub_c) = _as_operand(B, B_form, u.shape[1]), _as_operand(C, C_form, u.shape[1])
    delta = discretize_delta(delta, delta_bias, delta_softplus)
    if return_last_state:
        # The last state is rarely needed (prefill before stepping); take it from the reference maths.
        y, last = _scan_with_last_state(u, delta, A, B, C, (sub_b, sub_c))
    else:
        y, last = _SelectiveScanCore.apply(u, delta, A, B, C, (sub_b, sub_c)), None
    out = apply_skip_and_gate(y, u, D, z).to(out_dtype)
    return (out, last) if return_last_state else out


def _scan_with_last_state(u, delta, A, B, C, subs):
    decay, states = _decay_and_drive(u, delta, A, B, subs[0])
    # from a zero state, as the reference: A then stays in the graph (a zero gradient) at L = 1
    h = torch.zeros_like(states[:, :, 0])
    hs = []
    for l in range(u.shape[-1]):
        h = decay[:, :, l] * h + states[:, :, l]
        hs.append(h)
    states = torch.stack(hs, dim=2)  # L x (B, Di, N) -> (B, Di, L, N)
    return torch.einsum(f"bdln,{subs[1]}->bdl", states, C), h
