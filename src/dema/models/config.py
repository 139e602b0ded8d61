"""Typed model configuration: which block, which token layout, and the sizes.

Every model of the project is one `SequencePolicy` (see policy.py) configured by a `ModelConfig`.
The enums below are the only switches; nothing is selected by strings inside `forward`.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from dema.errors import ConfigError


class BlockKind(enum.Enum):
    """The residual block, i.e. the sequence mixer and how it is wrapped."""

    MAMBA_PRE_UP = "mamba-pre-up"  # RMSNorm -> Mamba block (in_proj, conv, S6, gate, out_proj) -> +x
    MAMBA_POST_UP = "mamba-post-up"  # GPT-2 block with attention replaced by a bare selective scan
    ATTENTION = "attention"  # GPT-2 block: causal self-attention + MLP (Decision Transformer)
    CONVFORMER = "convformer"  # MetaFormer block with DC's causal convolution mixer
    MLP = "mlp"  # no sequence mixing at all: LayerNorm -> MLP -> +x (behaviour cloning floor)


class TokenLayout(enum.Enum):
    """How the per-step embeddings (R_t, an action, s_t; order: `TokenOrder`) become tokens."""

    B3LD = "b3ld"  # three tokens per step along time: (B, 3K, E)
    BL3D = "bl3d"  # the three embeddings concatenated: one token per step, (B, K, 3E)
    STATE_ONLY = "state"  # only s_t (no return-to-go, no action): (B, K, E)


class TokenOrder(enum.Enum):
    """Which action each step carries and which token the action a_t is read from (B3LD only).

    RETURN_PREV_ACTION_STATE: per step (R_t, a_{t-1}, s_t), a_t predicted at token 2 (s_t); the
        action token holds the batch's `prev_actions`, so even the window's first s_t sees the
        action taken before the window. Every layout uses this order.
    RETURN_STATE_ACTION: Decision Transformer's own order, per step (R_t, s_t, a_t), a_t predicted
        at token 1 (s_t), which (causally) has not seen the a_t token after it; the action token
        holds the batch's `actions`, so s_t sees a_{t-1} through the previous step's a token (but
        the window's first s_t sees no action). B3LD only: in BL3D, a_t would sit inside the one
        token that predicts it.
    PREV_ACTION_RETURN_STATE: the order of DeMa's Atari code, per step (a_{t-1}, R_t, s_t): the
        tokens of r-aprev-s with the first two swapped, a_t predicted at token 2 (s_t); every
        layout; what the Atari presets of the DeMa models use (dema.models.registry).
    """

    RETURN_PREV_ACTION_STATE = "r-aprev-s"
    RETURN_STATE_ACTION = "r-s-a"
    PREV_ACTION_RETURN_STATE = "aprev-r-s"

    @property
    def state_last(self) -> bool:
        """s_t is the last token of a step, after a_{t-1}: the model can act one step at a time."""
        return self is not TokenOrder.RETURN_STATE_ACTION


class Activation(enum.Enum):
    GELU = "gelu"
    RELU = "relu"


class InitScheme(enum.Enum):
    """How fresh weights are drawn (SequencePolicy._init_weights; docs/ARCHITECTURE.md).

    OURS: normal(0.02) for every Linear and Embedding weight, zero biases, residual projections
        at 0.02 / sqrt(residuals per layer * n_layer); Mamba's own dt / A / D initialisation kept.
    OFFICIAL: what the reference code of the model's family does (its gym / MuJoCo code).
        Mamba blocks (AndssY/dema, mamba-ssm's `_init_weights` applied to the whole model):
        Linear weights keep PyTorch's default (kaiming-uniform), every Linear bias is zeroed
        except Mamba's dt bias, Embeddings normal(0.02), out_proj re-drawn kaiming-uniform /
        sqrt(n_layer). GPT-2-style blocks (attention, DC's convolution, post up-projection S6;
        kzl/decision-transformer's GPT-2 copy): the blocks and final norm get normal(0.02) weights
        and zero biases (no residual scaling in that copy, and no exception for Mamba's dt bias),
        embeddings, embedding LayerNorm and action head keep PyTorch's defaults. MLP blocks (BC;
        kzl's MLPBCModel has no init of its own): PyTorch's defaults everywhere.
    """

    OURS = "ours"
    OFFICIAL = "official"


@dataclass(frozen=True)
class ModelConfig:
    block: BlockKind = BlockKind.MAMBA_PRE_UP
    layout: TokenLayout = TokenLayout.B3LD
    n_layer: int = 3
    embed_dim: int = 128  # E: width of the per-modality embeddings
    d_model: int = 64  # D: width of the residual stream (Linear(E, D) in between when they differ)
    # Mamba
    d_state: int = 64  # N
    expand: int = 2  # Di = expand * D
    d_conv: int = 4  # W, causal depthwise convolution width
    dt_rank: int = 0  # R; 0 means ceil(D / 16) as in Mamba
    # Attention / MLP / convolution
    n_head: int = 1
    mlp_ratio: int = 4
    activation: Activation = Activation.GELU
    dropout: float = 0.0
    conv_window: int = 6  # Decision Convformer's token window
    embed_norm: bool = False  # LayerNorm on the token embeddings (Decision Transformer has it)
    # Positions and context
    position_embedding: bool = False  # learned timestep embedding added to every token
    max_ep_len: int = 1000
    context_len: int = 20  # K, steps in the window (Transformer-like acting and training)
    recurrent: bool = False  # RNN-like: train on whole trajectories, act with the recurrent cache
    token_order: TokenOrder = TokenOrder.RETURN_PREV_ACTION_STATE  # see TokenOrder; r-s-a needs B3LD
    # Fidelity switches (docs/ARCHITECTURE.md, "Differences from the reference code")
    init: InitScheme = InitScheme.OURS  # see InitScheme
    # False: left-padded positions (zeros) go through the embeddings and mixers like real tokens,
    # as in the official DeMa code, so padding changes the first K-1 decisions of an episode
    mask_padding: bool = True

    def __post_init__(self):
        for name in ("n_layer", "embed_dim", "d_model", "d_state", "expand", "d_conv", "n_head",
                     "mlp_ratio", "conv_window", "max_ep_len", "context_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model config: {name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_head:
            raise ConfigError(f"model config: d_model {self.d_model} is not divisible by n_head {self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model config: dropout must be in [0, 1), got {self.dropout}")
        if self.recurrent and self.block not in (BlockKind.MAMBA_PRE_UP, BlockKind.MAMBA_POST_UP):
            raise ConfigError("model config: recurrent=True needs a Mamba block (mamba-pre-up or mamba-post-up)")
        if self.token_order is TokenOrder.RETURN_STATE_ACTION:
            if self.layout is not TokenLayout.B3LD:
                raise ConfigError(
                    f"model config: token_order={self.token_order.value!r} needs layout={TokenLayout.B3LD.value!r} "
                    f"(got {self.layout.value!r}): with one token per step a_t would sit inside the token that "
                    f"predicts it; use token_order={TokenOrder.RETURN_PREV_ACTION_STATE.value!r}")
            if self.recurrent:
                raise ConfigError(
                    f"model config: recurrent=True acts step by step with the recurrent cache, which "
                    f"token_order={self.token_order.value!r} does not support; use "
                    f"token_order={TokenOrder.RETURN_PREV_ACTION_STATE.value!r}")

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def resolved_dt_rank(self) -> int:
        return self.dt_rank or -(-self.d_model // 16)

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"model config: unknown keys {unknown}; known keys: {sorted(known)}")
        kwargs = {}
        for name, value in data.items():
            default = known[name].default
            if isinstance(default, enum.Enum):
                try:
                    value = type(default)(value)
                except ValueError:
                    choices = [m.value for m in type(default)]
                    raise ConfigError(f"model config: {name}={value!r} is not one of {choices}") from None
            kwargs[name] = value
        return cls(**kwargs)


def _plain(value):
    return value.value if isinstance(value, enum.Enum) else value
