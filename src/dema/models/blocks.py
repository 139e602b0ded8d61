"""Residual blocks. Only the mixer differs between the models; the block kind says how it is wrapped.

    MambaBlock   (pre up-projection, the plain Mamba block):  x + Mamba(RMSNorm(x))
    GPT2Block    (attention, DC's convolution, or the post up-projection bare S6):
                 x + Mixer(LN(x)), then + MLP(LN(.))
    MLPBlock     (behaviour cloning floor, no sequence mixing): x + MLP(LN(x))

Blocks whose mixer is recurrent (Mamba, bare S6: `is_recurrent`) act with `init_cache` and
`step_chunk` (one or a few tokens continuing from the cache). The single-token `step` lives on the
mixers only, as the reference `step_chunk` is tested against (tests/models/test_mamba_block.py).
"""

from __future__ import annotations

import torch.nn as nn

from dema.models.config import Activation, BlockKind, ModelConfig
from dema.models.mamba import MambaMixer, SelectiveSSM
from dema.models.mixers import MLP, CausalConvMixer, CausalSelfAttention


def _activation(kind: Activation) -> nn.Module:
    return {Activation.GELU: nn.GELU(), Activation.RELU: nn.ReLU()}[kind]


class MambaBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm = nn.RMSNorm(cfg.d_model, eps=1e-5)
        self.mixer = MambaMixer(cfg.d_model, cfg.d_state, cfg.d_conv, cfg.expand, cfg.resolved_dt_rank)

    def forward(self, x, mask=None):
        return x + self.mixer(self.norm(x), mask)

    def init_cache(self, batch_size, device=None):
        return self.mixer.init_cache(batch_size, device)

    def step_chunk(self, x, cache):
        y, cache = self.mixer.step_chunk(self.norm(x), cache)
        return x + y, cache


class GPT2Block(nn.Module):
    def __init__(self, cfg: ModelConfig, mixer: nn.Module):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model)
        self.mixer = mixer
        self.ln_2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg.d_model, cfg.mlp_ratio, _activation(cfg.activation), cfg.dropout)

    def forward(self, x, mask=None):
        x = x + self.mixer(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))

    def init_cache(self, batch_size, device=None):
        return self.mixer.init_cache(batch_size, device)

    def step_chunk(self, x, cache):
        y, cache = self.mixer.step_chunk(self.ln_1(x), cache)
        x = x + y
        return x + self.mlp(self.ln_2(x)), cache


class MLPBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg.d_model, cfg.mlp_ratio, _activation(cfg.activation), cfg.dropout)

    def forward(self, x, mask=None):
        return x + self.mlp(self.ln(x))


def build_block(cfg: ModelConfig, n_token_types: int) -> nn.Module:
    """The factory: one block of the kind the config names."""
    if cfg.block is BlockKind.MAMBA_PRE_UP:
        return MambaBlock(cfg)
    if cfg.block is BlockKind.MAMBA_POST_UP:
        # bare selective scan at the residual width: no in/out projection, no gate
        return GPT2Block(cfg, SelectiveSSM(cfg.d_model, cfg.d_state, cfg.d_conv, cfg.resolved_dt_rank))
    if cfg.block is BlockKind.ATTENTION:
        return GPT2Block(cfg, CausalSelfAttention(cfg.d_model, cfg.n_head, cfg.dropout))
    if cfg.block is BlockKind.CONVFORMER:
        return GPT2Block(cfg, CausalConvMixer(cfg.d_model, cfg.conv_window, n_token_types, cfg.dropout))
    if cfg.block is BlockKind.MLP:
        return MLPBlock(cfg)
    raise AssertionError(f"unhandled block kind {cfg.block}")


def is_recurrent(block: nn.Module) -> bool:
    """Whether the block can act token by token (`init_cache`, `step_chunk`): its mixer is Mamba or bare S6."""
    return isinstance(getattr(block, "mixer", None), (MambaMixer, SelectiveSSM))
