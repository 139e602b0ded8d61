"""Mamba's hidden attention (Ali, Zimerman & Wolf 2024; the DeMa paper's equations 5-6).

Unrolling the selective scan with h_{-1} = 0 writes its output as a causal linear attention,
per channel d:

    y_i = sum_{j <= i} alpha_{i,j} u_j
    alpha_{i,j} = sum_n C_i[n] * exp(A[d,n] * sum_{k=j+1..i} delta_k) * delta_j * B_j[n]

taken on the post-conv sequence u, without the D skip and the gate. `hidden_attention` returns the
whole (B, Di, L, L) matrix; `hidden_attention_last_row` only the row of the last token (the current
decision's attention over the past), in O(L) memory for long episodes. `policy_hidden_attention`
extracts it from every Mamba layer of a SequencePolicy.
"""

from __future__ import annotations

import torch

from dema.scan.reference import discretize_delta


def _cumulative_delta(delta: torch.Tensor) -> torch.Tensor:
    # float64 so that S_i - S_j stays exact for long sequences (it is a difference of prefix sums)
    return delta.double().cumsum(-1)


def hidden_attention(delta, A, B, C, delta_bias=None, delta_softplus=False) -> torch.Tensor:
    """delta (B, Di, L), A (Di, N), B, C (B, N, L) -> alpha (B, Di, L, L), zero above the diagonal.

    `(alpha @ u[..., None])[..., 0]` equals `selective_scan_fn(u, delta, A, B, C,
    delta_bias=delta_bias, delta_softplus=delta_softplus)`.
    """
    delta = discretize_delta(delta, delta_bias, delta_softplus)
    length = delta.shape[-1]
    prefix = _cumulative_delta(delta)  # (B, Di, L)
    causal = torch.ones(length, length, dtype=torch.bool, device=delta.device).tril()  # j <= i
    # sum_{k=j+1..i} delta_k = S_i - S_j; zeroed above the diagonal so exp() stays finite there
    segment = (prefix[..., :, None] - prefix[..., None, :]).masked_fill(~causal, 0.0).to(delta.dtype)
    alpha = delta.new_zeros(*delta.shape, length)  # (B, Di, L, L)
    for n in range(A.shape[1]):  # one state index at a time keeps memory at O(B Di L^2)
        decay = torch.exp(A[:, n, None, None] * segment)  # (B, Di, L, L)
        query = C[:, n, None, :, None]  # (B, 1, L, 1): C_i[n]
        key = (delta * B[:, n, None, :])[:, :, None, :]  # (B, Di, 1, L): delta_j B_j[n]
        alpha = alpha + query * decay * key
    return alpha * causal


def hidden_attention_last_row(delta, A, B, C, delta_bias=None, delta_softplus=False) -> torch.Tensor:
    """The last row alpha_{L-1, j}: (B, Di, L). Memory O(B Di L N), fine for whole episodes."""
    delta = discretize_delta(delta, delta_bias, delta_softplus)
    prefix = _cumulative_delta(delta)
    segment = (prefix[..., -1:] - prefix).to(delta.dtype)  # (B, Di, L): sum_{k=j+1..L-1} delta_k
    decay = torch.exp(segment[..., None] * A[:, None, :])  # (B, Di, L, N)
    key = delta[..., None] * B.transpose(1, 2)[:, None]  # (B, Di, L, N)
    return torch.einsum("bdln,bn->bdl", decay * key, C[:, :, -1])


@torch.no_grad()
def policy_hidden_attention(policy, batch, last_row: bool = False) -> list[torch.Tensor]:
    """Hidden attention of every Mamba layer of `policy` on `batch`, over tokens.

    Returns one tensor per layer: (B, Di, T, T), or (B, Di, T) with last_row. T = 3K for B3LD.
    Raises ValueError for models without a selective scan.
    """
    captured = []

    def capture(module, args):
        captured.append((module, args[0], args[1] if len(args) > 1 else None))

    mixers = [block.mixer for block in policy.blocks if hasattr(getattr(block, "mixer", None), "step")]
    if not mixers:
        raise ValueError(f"{policy.cfg.block.value} blocks have no selective scan, hence no hidden attention")
    handles = [m.register_forward_pre_hook(capture) for m in mixers]
    try:
        policy.hidden_states(batch)
    finally:
        for handle in handles:
            handle.remove()
    fn = hidden_attention_last_row if last_row else hidden_attention
    out = []
    for mixer, x, mask in captured:
        s = mixer.scan_inputs(x, mask)
        out.append(fn(s.delta, s.A, s.B, s.C, delta_bias=s.delta_bias, delta_softplus=True))
    return out
