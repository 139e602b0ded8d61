"""A trained policy as graphs an exporter can trace: the decision `dema eval` makes, in plain PyTorch ops.

    RecurrentStep (RNN-like DeMa: one environment step through the carried Mamba state)
        obs (B, S) or Atari's frames (B, C, H, W), prev_action (B, A) or a discrete index (B,),
        return_to_go (B, 1), timestep (B,), conv_state.i (B, W-1, Di), ssm_state.i (B, Di, N) per layer i
        -> action (B, A) or discrete logits (B, n_actions), next_conv_state.i, next_ssm_state.i
    Window (Transformer-like DeMa, DT, DC, BC: the last K steps re-read at every decision)
        obs (B, K, S), prev_actions (B, K, A), returns_to_go (B, K, 1), timesteps (B, K), mask (B, K)
        -> action (B, A)

Both take RAW observations: the normalisation (obs - mean) / std of the run's normalization.json is
the graph's first op. return_to_go is already divided by the reward scale, as the model sees it
(the agent keeps it the way `dema.evaluation.agent` does). Everything else is the trunk's own code
(`SequencePolicy`'s embeddings, token layout, norms, head; attention, convolution and MLP blocks as
they are) except the selective scan, whose CPU paths are compiled kernels an exporter cannot trace:
`ssm_chunk` below computes it in tensor ops (the recurrent step of `SelectiveSSM.step_chunk`; from
zero states with the token mask, `SelectiveSSM.forward`), tested equal to both.

What it covers (`unsupported_reason` says why not): every model on vector observations and continuous
actions (MuJoCo, maze2d); on Atari's frames (discrete actions, sampled from the logits by the agent)
RNN-like DeMa's step, whose frame goes through the CNN once, but not a window, which would re-read
all K frames through the CNN at every decision where `dema eval` embeds each frame once; for the
recurrent step, models that act step by step (`SequencePolicy.supports_step`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dema.models.blocks import GPT2Block, MambaBlock
from dema.models.config import TokenLayout
from dema.models.mamba import MambaMixer, SelectiveSSM


def unsupported_reason(policy, recurrent: bool) -> str | None:
    """Why `policy` cannot be exported (None when it can), as the end of a sentence "cannot be exported: ..."."""
    if not isinstance(policy.state_dim, int) and not recurrent:
        return (f"it acts on frames {tuple(policy.state_dim)} (Atari) with a K-step window, which an exported graph "
                "would re-read through the CNN at every decision (dema eval embeds each frame once); Atari exports "
                "cover RNN-like DeMa (dema-rnn), vector observations every model")
    if policy.discrete and isinstance(policy.state_dim, int):
        return "its actions are discrete on vector observations; the export covers continuous ones (and Atari's)"
    if recurrent and not policy.supports_step:
        return (f"it is marked recurrent but its blocks ({policy.cfg.block.value}) or token order "
                f"({policy.cfg.token_order.value}) cannot act step by step")
    return None


def ssm_chunk(ssm: SelectiveSSM, x: torch.Tensor, conv_state: torch.Tensor, ssm_state: torch.Tensor,
              z: torch.Tensor | None = None, mask: torch.Tensor | None = None):
    """T tokens x (B, T, Di) continuing from conv_state (B, W-1, Di) (the last W-1 conv inputs, oldest
    first) and ssm_state (B, Di, N) -> (y (B, T, Di), next conv_state, next ssm_state).

    With mask (B, T) the conv input and the scan input are zeroed at masked positions, as
    `SelectiveSSM.forward` does for left padding. The scan is unrolled over the T tokens: T is fixed
    in a graph (3 for B3LD's step, 3K for a window), and an unrolled chunk is a handful of ops per
    token where a scan loop op would cost more than the arithmetic at batch 1."""
    length, width = int(x.shape[1]), ssm.d_conv  # fixed by the graph: constants, not shape ops, when traced
    d_inner, d_state = ssm.d_inner, ssm.d_state
    if mask is not None:
        x = x * mask[..., None]
    window = torch.cat([conv_state, x], dim=1)  # (B, W-1+T, Di)
    # the causal depthwise conv as the T windows of W taps: u_t = sum_k w_k * window_{t+k}
    taps = [t + k for t in range(length) for k in range(width)]
    windows = window[:, taps].reshape(-1, length, width, d_inner)  # (B, T*W, Di) -> (B, T, W, Di)
    kernel = ssm.conv1d.weight[:, 0, :].transpose(0, 1)  # (Di, 1, W) -> (W, Di)
    u = F.silu((windows * kernel).sum(2) + ssm.conv1d.bias)  # (B, T, Di)
    if mask is not None:
        u = u * mask[..., None]
    dt, B, C = torch.split(ssm.x_proj(u), [ssm.dt_rank, d_state, d_state], dim=-1)  # (B, T, R), 2 x (B, T, N)
    delta = F.softplus(ssm.dt_proj(dt))  # (B, T, Di)
    A = -torch.exp(ssm.A_log.float())  # (Di, N)
    # Token by token, each token's operands split off in the shape they broadcast in, so that a token
    # is five elementwise ops and a matrix-vector product on (Di, N), with no per-token reshapes: at
    # batch 1 a graph's cost is its number of ops as much as its arithmetic (docs/PERFORMANCE.md,
    # "Exported decisions").
    deltas = delta.transpose(1, 2).split(1, dim=2)  # (B, T, Di) -> (B, Di, T) -> T x (B, Di, 1)
    drives = (delta * u).transpose(1, 2).split(1, dim=2)  # T x (B, Di, 1)
    inputs = B.split(1, dim=1)  # (B, T, N) -> T x (B, 1, N)
    readouts = C.transpose(1, 2).split(1, dim=2)  # (B, T, N) -> (B, N, T) -> T x (B, N, 1)
    h, ys = ssm_state, []
    for delta_t, drive_t, b_t, c_t in zip(deltas, drives, inputs, readouts):
        h = torch.exp(delta_t * A) * h + drive_t * b_t  # (B, Di, N)
        ys.append(h @ c_t)  # (B, Di, N) @ (B, N, 1) -> (B, Di, 1)
    y = torch.cat(ys, dim=2).transpose(1, 2) + ssm.D * u  # T x (B, Di, 1) -> (B, Di, T) -> (B, T, Di)
    if z is not None:
        y = y * F.silu(z)
    return y, window[:, length:], h  # the last W-1 conv inputs


def _block_chunk(block: nn.Module, x: torch.Tensor, conv_state, ssm_state, mask=None):
    """One recurrent block over x (B, T, D) from its states -> (x, conv_state, ssm_state): `step_chunk`'s
    residual wrapping (MambaBlock, or GPT2Block around a bare S6) with `ssm_chunk` inside."""
    if isinstance(block, MambaBlock):
        mixer: MambaMixer = block.mixer
        inner, z = mixer.in_proj(block.norm(x)).split(mixer.ssm.d_inner, dim=-1)  # (B, T, 2Di) -> 2 x (B, T, Di)
        y, conv_state, ssm_state = ssm_chunk(mixer.ssm, inner, conv_state, ssm_state, z, mask)
        return x + mixer.out_proj(y), conv_state, ssm_state
    assert isinstance(block, GPT2Block) and isinstance(block.mixer, SelectiveSSM), type(block)
    y, conv_state, ssm_state = ssm_chunk(block.mixer, block.ln_1(x), conv_state, ssm_state, None, mask)
    x = x + y
    return x + block.mlp(block.ln_2(x)), conv_state, ssm_state


def _is_recurrent_block(block: nn.Module) -> bool:
    return isinstance(block, MambaBlock) or (isinstance(block, GPT2Block) and isinstance(block.mixer, SelectiveSSM))


def _ssm_of(block: nn.Module) -> SelectiveSSM:
    return block.mixer.ssm if isinstance(block, MambaBlock) else block.mixer


class _Normalised(nn.Module):
    """A policy with the run's observation statistics: `normalise(obs)` = (obs - mean) / std, float32."""

    def __init__(self, policy, state_mean: np.ndarray, state_std: np.ndarray):
        super().__init__()
        self.policy = policy
        dtype = next(policy.parameters()).dtype
        self.register_buffer("state_mean", torch.as_tensor(np.asarray(state_mean), dtype=dtype))
        self.register_buffer("state_std", torch.as_tensor(np.asarray(state_std), dtype=dtype))

    def normalise(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.state_mean) / self.state_std


class RecurrentStep(_Normalised):
    """RNN-like DeMa's decision: `SequencePolicy.step` on raw observations, the state as explicit tensors
    (per layer: conv_state (B, W-1, Di), the last W-1 conv inputs, oldest first; ssm_state (B, Di, N))."""

    def state_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """[(name, shape without the batch axis)] of the state, in input order: conv_state.0, ssm_state.0, ..."""
        shapes = []
        for i, block in enumerate(self.policy.blocks):
            ssm = _ssm_of(block)
            shapes += [(f"conv_state.{i}", (ssm.d_conv - 1, ssm.d_inner)), (f"ssm_state.{i}", (ssm.d_inner, ssm.d_state))]
        return shapes

    def forward(self, obs, prev_action, return_to_go, timestep, *state):
        policy = self.policy
        x = policy.step_tokens(self.normalise(obs), prev_action, return_to_go, timestep)
        next_state = []
        for i, block in enumerate(policy.blocks):
            x, conv_state, ssm_state = _block_chunk(block, x, state[2 * i], state[2 * i + 1])
            next_state += [conv_state, ssm_state]
        return (policy._head(policy.final_norm(x[:, -1])), *next_state)  # the decision at s_t, the last token


class Window(_Normalised):
    """A K-step window's decision: `SequencePolicy.predict_last` on raw observations, the window's
    actions a_t (Decision Transformer's order embeds them) derived from prev_actions as the acting
    agent does (`WindowAgent._window_actions`)."""

    def forward(self, obs, prev_actions, returns_to_go, timesteps, mask):
        from dema.data.batch import Batch

        policy = self.policy
        actions = torch.cat([prev_actions[:, 1:], torch.zeros_like(prev_actions[:, -1:])], dim=1)  # (B, K, A)
        batch = Batch(states=self.normalise(obs), actions=actions, prev_actions=prev_actions,
                      returns_to_go=returns_to_go, timesteps=timesteps, mask=mask)
        tokens, token_mask = policy._tokens(batch)  # (B, T, width), (B, T)
        x = policy.input_proj(tokens)
        mixer_mask = token_mask if policy.cfg.mask_padding else None
        for block in policy.blocks:
            if _is_recurrent_block(block):  # from zero states: the full forward of SelectiveSSM
                ssm = _ssm_of(block)
                conv_state = x.new_zeros(x.shape[0], ssm.d_conv - 1, ssm.d_inner)
                ssm_state = x.new_zeros(x.shape[0], ssm.d_inner, ssm.d_state)
                mask_f = None if mixer_mask is None else mixer_mask.to(x.dtype)
                x, _, _ = _block_chunk(block, x, conv_state, ssm_state, mask_f)
            else:
                x = block(x, mixer_mask)
        # the decision at the last step's s_t token: the last token, or the one before a_t in r-s-a
        last = -3 + policy._state_token if policy.cfg.layout is TokenLayout.B3LD else -1
        return policy._head(policy.final_norm(x[:, last]))
