"""The fused acting step for RNN-like DeMa on the CPU: one Numba call per decision.

`FusedRecurrentStep` runs a policy's `step` (and a Transformer-like DeMa's window read,
`predict_last`) through the kernel of `dema.scan.fused_step`, which explains it; here: which
policies it covers, and their weights as the kernel's arrays. Weights are copied into contiguous
float32 arrays by `refresh()` (the agent calls it at every episode start, so a policy that trains
between evaluations is re-read).

What it covers: Mamba blocks (MAMBA_PRE_UP, the DeMa presets) with layout B3LD or BL3D, token
order r-aprev-s, vector states and continuous actions, float32 CPU weights. Anything else
(bare-S6 blocks, frames, discrete actions, CUDA) keeps `SequencePolicy.step`; `fused_step_for`
says which. Equal to `SequencePolicy.step` to 1e-5 (tests/models/test_fused_step.py, random
weights and a trained run); DEMA_FUSED_STEP=0, or `compute_paths(fused_step=False)` for a block of
code (dema.scan.paths), turns it off.

The same function reads a K-step window for Transformer-like DeMa (`predict_last`): from a zero
state, its real steps only (with `mask_padding`, left padding is zeros that leave the state at zero,
so skipping it is exact), equal to `SequencePolicy.predict_last` to 1e-5 (tested). `dema eval`'s
WindowAgent reads a plain DeMa's window through it; `dema bench act` times it (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from dema.models.config import BlockKind, TokenLayout, TokenOrder
from dema.models.mamba import MambaMixer
from dema.scan.fused_step import FusedCache, decide
from dema.scan.paths import current_paths


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to(torch.float32).cpu().numpy())


def _t(t: torch.Tensor) -> np.ndarray:
    """A (out, in) weight as a contiguous (in, out) array."""
    return _np(t.detach().transpose(-1, -2))


def unsupported_reason(policy) -> str | None:
    """Why `policy` cannot take the fused step (None: it can)."""
    cfg = policy.cfg
    if not current_paths().fused_step:
        return "the compute paths turn it off (DEMA_FUSED_STEP=0, or compute_paths(fused_step=False))"
    if cfg.block is not BlockKind.MAMBA_PRE_UP:
        return f"block {cfg.block.value} (the fused step covers Mamba blocks)"
    if cfg.layout not in (TokenLayout.B3LD, TokenLayout.BL3D):
        return f"layout {cfg.layout.value}"
    if cfg.token_order is not TokenOrder.RETURN_PREV_ACTION_STATE:
        return f"token order {cfg.token_order.value}"
    if policy.discrete or not isinstance(policy.embed_state, nn.Linear):
        return "discrete actions or frames"
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in policy.parameters()):
        return "weights not float32 on the CPU"
    if policy.training and cfg.dropout > 0:
        return "dropout active (train mode)"
    if not all(isinstance(block.mixer, MambaMixer) for block in policy.blocks):
        return "a block without a Mamba mixer"
    return None


class FusedRecurrentStep:
    """`SequencePolicy.step` for the policies `unsupported_reason` accepts, as one Numba call."""

    def __init__(self, policy):
        reason = unsupported_reason(policy)
        if reason is not None:
            raise ValueError(f"the fused step does not cover this policy: {reason}")
        self.policy = policy
        self.refresh()

    def refresh(self) -> None:
        """(Re-)read the policy's weights into contiguous float32 arrays."""
        p, cfg = self.policy, self.policy.cfg
        mixers = [block.mixer for block in p.blocks]
        ssms = [m.ssm for m in mixers]
        empty = np.zeros((1, 1), dtype=np.float32)
        norm = p.embed_norm if isinstance(p.embed_norm, nn.LayerNorm) else None
        proj = p.input_proj if isinstance(p.input_proj, nn.Linear) else None
        self.weights = (
            _t(p.embed_state.weight), _np(p.embed_state.bias), _t(p.embed_return.weight), _np(p.embed_return.bias),
            _t(p.embed_action.weight), _np(p.embed_action.bias),
            _np(p.embed_timestep.weight) if p.embed_timestep is not None else empty, p.embed_timestep is not None,
            _np(norm.weight) if norm is not None else empty[0], _np(norm.bias) if norm is not None else empty[0],
            norm is not None,
            _t(proj.weight) if proj is not None else empty, _np(proj.bias) if proj is not None else empty[0],
            proj is not None, cfg.layout is TokenLayout.B3LD,
            np.stack([_np(block.norm.weight) for block in p.blocks]),
            np.stack([_t(m.in_proj.weight) for m in mixers]),
            np.stack([_t(s.conv1d.weight[:, 0, :]) for s in ssms]),
            np.stack([_np(s.conv1d.bias) for s in ssms]),
            np.stack([_t(s.x_proj.weight) for s in ssms]),
            np.stack([_t(s.dt_proj.weight) for s in ssms]),
            np.stack([_np(s.dt_proj.bias) for s in ssms]),
            np.stack([_t(-torch.exp(s.A_log.float())) for s in ssms]),
            np.stack([_np(s.D) for s in ssms]),
            np.stack([_t(m.out_proj.weight) for m in mixers]),
            _np(p.final_norm.weight), _t(p.action_head.weight), _np(p.action_head.bias),
        )
        ssm = ssms[0]
        self.shape = (len(ssms), ssm.d_inner, ssm.d_conv, ssm.d_state)

    def init_cache(self, batch_size: int) -> FusedCache:
        n_layer, d_inner, d_conv, d_state = self.shape
        return FusedCache(conv=np.zeros((n_layer, batch_size, d_conv - 1, d_inner), dtype=np.float32),
                          ssm=np.zeros((n_layer, batch_size, d_state, d_inner), dtype=np.float32))

    def step(self, state, prev_action, return_to_go, timestep, cache: FusedCache):
        """As `SequencePolicy.step`: state (B, S), prev_action (B, A), return_to_go (B, 1),
        timestep (B,) -> (action (B, A) float32 tensor, cache, updated in place)."""
        batch = state.shape[0]
        actions = np.empty((batch, self.policy.act_dim), dtype=np.float32)
        decide(_np(state)[:, None], _np(prev_action)[:, None], _np(return_to_go)[:, None],
                _steps(timestep[:, None]), np.zeros(batch, dtype=np.int64), False,
                *self.weights, cache.conv, cache.ssm, actions)
        return torch.from_numpy(actions), cache

    def predict_last(self, batch) -> torch.Tensor:
        """As `SequencePolicy.predict_last` for a Transformer-like model made of Mamba blocks: the
        window read from a zero state, its real (unpadded) steps only. Exact for left-padded windows
        with `mask_padding` (the padded tokens are then zeros that leave the state at zero); others
        go to the policy's own forward."""
        mask = batch.mask
        real = mask.sum(1)
        K = mask.shape[1]
        suffix = torch.arange(K, device=mask.device)[None] >= (K - real)[:, None]
        if not self.policy.cfg.mask_padding or not bool((suffix == mask).all()) or not bool((real > 0).all()):
            return self.policy.predict_last(batch)
        n = mask.shape[0]
        cache = self.init_cache(n)
        actions = np.empty((n, self.policy.act_dim), dtype=np.float32)
        decide(_np(batch.states), _np(batch.prev_actions), _np(batch.returns_to_go), _steps(batch.timesteps),
                (K - real).cpu().numpy().astype(np.int64), True, *self.weights, cache.conv, cache.ssm, actions)
        return torch.from_numpy(actions)


def _steps(timesteps: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(timesteps.detach().cpu().numpy().astype(np.int64))


def fused_step_for(policy, device="cpu") -> FusedRecurrentStep | None:
    """The fused step when it covers `policy` acting on `device`, else None (use `policy.step`)."""
    if torch.device(device).type != "cpu" or unsupported_reason(policy) is not None:
        return None
    return FusedRecurrentStep(policy)
