"""SequencePolicy: the one trunk shared by DeMa, Decision Transformer, Decision Convformer and BC.

    per step t:   R_t -> Linear(1, E)     action -> Linear(A, E)     s_t -> Linear(S, E)
                  (discrete actions: Embedding + tanh; Atari frames: Nature CNN + tanh)
                  (+ timestep embedding of t on each, when position_embedding)
    token order:  r-aprev-s  (R_t, a_{t-1}, s_t), the action token holds batch.prev_actions
                  r-s-a      (R_t, s_t, a_t), Decision Transformer's, the action token holds
                             batch.actions (B3LD only; s_t sees a_{t-1} via the previous step)
                  aprev-r-s  (a_{t-1}, R_t, s_t), DeMa's Atari code's (its Atari presets)
    token layout: B3LD  the three as three tokens:               (B, K, 3, E) -> (B, 3K, E)
                  BL3D  the three concatenated into one token:   (B, K, 3E)
                  STATE_ONLY  s_t alone (behaviour cloning):     (B, K, E)
    trunk:        Linear(width, D) (identity when equal) -> n_layer blocks -> final norm
    head:         from the token of s_t (token 2 in r-aprev-s, token 1 in r-s-a, which has not
                  seen a_t): Linear(D, A) + tanh (continuous) or logits (discrete)

Only `cfg.block` changes the sequence mixer (Mamba, bare S6, attention, convolution, none), so
every comparison between models is between mixers on the same embeddings, head and loss.

Fidelity switches: `cfg.init` draws fresh weights our way or as each model's reference code
does (`InitScheme`); `cfg.mask_padding=False` feeds the zero left-padding of short windows
through the mixers like real tokens, as the official DeMa code does (docs/ARCHITECTURE.md).

Acting: Transformer-like models re-read a K-step window (`predict_last`), optionally on state
embeddings computed once per state (`embed_states`: a frame goes through the CNN when it arrives,
not K times); models made of recurrent blocks can also act one step at a time (`init_cache`,
`step`), equal to the full forward over the whole trajectory (orders with s_t last: r-aprev-s,
aprev-r-s).
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from dema.data.batch import Batch
from dema.errors import ConfigError
from dema.models.blocks import build_block, is_recurrent
from dema.models.config import BlockKind, InitScheme, ModelConfig, TokenLayout, TokenOrder
from dema.models.encoders import state_encoder

TOKENS_PER_STEP = {TokenLayout.B3LD: 3, TokenLayout.BL3D: 1, TokenLayout.STATE_ONLY: 1}


class SequencePolicy(nn.Module):
    def __init__(self, cfg: ModelConfig, state_dim: int | tuple[int, ...], act_dim: int, discrete: bool = False):
        """state_dim: S, or (C, H, W) for frames (Nature CNN encoder);
        act_dim: action size (continuous) or number of actions (discrete)."""
        super().__init__()
        self.cfg, self.state_dim, self.act_dim, self.discrete = cfg, state_dim, act_dim, discrete
        E, D = cfg.embed_dim, cfg.d_model
        uses_return = cfg.layout is not TokenLayout.STATE_ONLY
        self.embed_state = state_encoder(state_dim, E)
        self.embed_return = nn.Linear(1, E) if uses_return else None
        if not uses_return:
            self.embed_action = None
        elif discrete:  # index act_dim is reserved: "no previous action" (a_{-1}) or "not yet taken"
            self.embed_action = nn.Sequential(nn.Embedding(act_dim + 1, E), nn.Tanh())
        else:
            self.embed_action = nn.Linear(act_dim, E)
        self.embed_timestep = nn.Embedding(cfg.max_ep_len, E) if cfg.position_embedding else None
        self.embed_norm = nn.LayerNorm(E) if cfg.embed_norm else nn.Identity()
        token_width = 3 * E if cfg.layout is TokenLayout.BL3D else E
        self.input_proj = nn.Linear(token_width, D) if token_width != D else nn.Identity()
        self.embed_dropout = nn.Dropout(cfg.dropout)
        n_types = TOKENS_PER_STEP[cfg.layout]
        self.blocks = nn.ModuleList(build_block(cfg, n_types) for _ in range(cfg.n_layer))
        self.final_norm = nn.RMSNorm(D, eps=1e-5) if cfg.block is BlockKind.MAMBA_PRE_UP else nn.LayerNorm(D)
        self.action_head = nn.Linear(D, act_dim)
        self._init_weights()

    # ---------------------------------------------------------------- initialisation
    def _init_weights(self) -> None:
        """Re-draw the freshly constructed weights as `cfg.init` says (see InitScheme)."""
        if self.cfg.init is InitScheme.OURS:
            self.apply(self._init_ours)
        elif self.cfg.block is BlockKind.MAMBA_PRE_UP:
            self.apply(self._init_official_mamba)
        elif self.cfg.block is not BlockKind.MLP:
            # GPT-2's init covers the GPT2Model only: the blocks and ln_f, not the embeddings or head
            for module in (*self.blocks.modules(), self.final_norm):
                _init_official_gpt2(module)
        # OFFICIAL with MLP blocks (BC): kzl's MLPBCModel keeps PyTorch's defaults, as constructed

    def _init_ours(self, module: nn.Module):
        """normal(0.02); residual projections scaled down with depth; Mamba's own dt/A/D
        initialisation is kept (those parameters are marked `_no_reinit`)."""
        if isinstance(module, nn.Linear):
            if not getattr(module.weight, "_no_reinit", False):
                std = 0.02
                if getattr(module, "_is_residual_projection", False):
                    residuals_per_layer = 1 if self.cfg.block is BlockKind.MAMBA_PRE_UP else 2
                    std /= math.sqrt(residuals_per_layer * self.cfg.n_layer)
                nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None and not getattr(module.bias, "_no_reinit", False):
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, 0.02)

    def _init_official_mamba(self, module: nn.Module):
        """mamba-ssm's `_init_weights(n_residuals_per_layer=1)`, which AndssY/dema applies to its
        whole model: Linear weights keep PyTorch's default (kaiming-uniform), Linear biases are
        zeroed except Mamba's dt bias, Embeddings normal(0.02), out_proj re-drawn kaiming-uniform
        and divided by sqrt(n_layer)."""
        if isinstance(module, nn.Linear):
            if module.bias is not None and not getattr(module.bias, "_no_reinit", False):
                nn.init.zeros_(module.bias)
            if getattr(module, "_is_residual_projection", False):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5))
                with torch.no_grad():
                    module.weight /= math.sqrt(self.cfg.n_layer)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, 0.02)

    # ---------------------------------------------------------------- embeddings and tokens
    @property
    def _state_token(self) -> int:
        """Index within a B3LD step of the s_t token, the one a_t is predicted from."""
        return 1 if self.cfg.token_order is TokenOrder.RETURN_STATE_ACTION else 2

    def embed_states(self, states: torch.Tensor) -> torch.Tensor:
        """(..., S) states or (..., C, H, W) frames -> (..., E): the state encoder alone (Linear, or the
        Nature CNN), what `predict_last(..., state_embeddings=...)` takes in place of the states."""
        return self.embed_state(states)

    def _embed_step(self, states, action, returns_to_go, timesteps, state_embeddings=None) -> list[torch.Tensor]:
        """Per-step embeddings in token order, each (..., E): [R_t, a_{t-1}, s_t] with
        action = a_{t-1} (r-aprev-s), [a_{t-1}, R_t, s_t] (aprev-r-s), [R_t, s_t, a_t] with
        action = a_t (r-s-a), or [s_t]. `state_embeddings`, when given, stand for `embed_states(states)`."""
        parts = [self.embed_state(states) if state_embeddings is None else state_embeddings]
        if self.embed_return is not None:
            r, a = self.embed_return(returns_to_go), self.embed_action(action)
            parts = {TokenOrder.RETURN_STATE_ACTION: [r, parts[0], a],
                     TokenOrder.RETURN_PREV_ACTION_STATE: [r, a, parts[0]],
                     TokenOrder.PREV_ACTION_RETURN_STATE: [a, r, parts[0]]}[self.cfg.token_order]
        if self.embed_timestep is not None:
            time = self.embed_timestep(timesteps.clamp(0, self.cfg.max_ep_len - 1))
            parts = [p + time for p in parts]
        return [self.embed_norm(p) for p in parts]

    def _tokens(self, batch: Batch, state_embeddings=None) -> tuple[torch.Tensor, torch.Tensor]:
        """-> tokens (B, T, width) and token mask (B, T)."""
        if not self.cfg.mask_padding:
            batch = _zero_padding(batch)  # the official code's zeros, whatever the batch holds there
            if state_embeddings is not None:  # they stand for the states: zero where those are
                state_embeddings = _zero_padded(state_embeddings, batch.mask)
        dt_order = self.cfg.token_order is TokenOrder.RETURN_STATE_ACTION
        action = batch.actions if dt_order else batch.prev_actions
        parts = self._embed_step(batch.states, action, batch.returns_to_go, batch.timesteps, state_embeddings)
        if self.cfg.layout is TokenLayout.B3LD:
            # per step the tokens are (R_t, a_{t-1}, s_t), or (R_t, s_t, a_t) in DT's order
            tokens = torch.stack(parts, dim=2)  # (B, K, 3, E)
            tokens = tokens.flatten(1, 2)  # (B, K, 3, E) -> (B, 3K, E)
            mask = batch.mask.repeat_interleave(3, dim=1)  # (B, K) -> (B, 3K)
        elif self.cfg.layout is TokenLayout.BL3D:
            tokens, mask = torch.cat(parts, dim=-1), batch.mask  # (B, K, 3E)
        else:
            tokens, mask = parts[0], batch.mask  # (B, K, E)
        return tokens, mask

    # ---------------------------------------------------------------- full forward
    def hidden_states(self, batch: Batch, state_embeddings=None) -> tuple[torch.Tensor, torch.Tensor]:
        """-> final-normed hidden states (B, T, D) and the token mask (B, T)."""
        tokens, mask = self._tokens(batch, state_embeddings)
        x = self.embed_dropout(self.input_proj(tokens))
        mixer_mask = mask if self.cfg.mask_padding else None  # None: padded tokens mix like real ones
        for block in self.blocks:
            x = block(x, mixer_mask)
        return self.final_norm(x), mask

    def forward(self, batch: Batch, state_embeddings: torch.Tensor | None = None) -> torch.Tensor:
        """-> action predictions (B, K, A): tanh-bounded actions, or logits when discrete.
        `state_embeddings` (B, K, E): `embed_states(batch.states)` computed beforehand; batch.states
        is then not read (it may be empty, (B, K, 0))."""
        h, _ = self.hidden_states(batch, state_embeddings)
        if self.cfg.layout is TokenLayout.B3LD:
            h = h.unflatten(1, (batch.length, 3))[:, :, self._state_token]  # (B, 3K, D) -> (B, K, 3, D) -> s_t
        return self._head(h)

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        out = self.action_head(h)
        return out if self.discrete else torch.tanh(out)

    def loss(self, batch: Batch) -> torch.Tensor:
        """Masked MSE on actions (continuous) or cross-entropy (discrete), over real positions."""
        preds = self(batch)
        if self.discrete:
            return F.cross_entropy(preds[batch.mask], batch.actions[batch.mask])
        return (preds - batch.actions).square().mean(-1)[batch.mask].mean()

    @torch.no_grad()
    def predict_last(self, batch: Batch, state_embeddings: torch.Tensor | None = None) -> torch.Tensor:
        """(B, A): the prediction at the last position of each (left-padded) window. In order
        r-s-a, `batch.actions` must hold the window's past actions (its last one is never seen).
        `state_embeddings` (B, K, E): the window's states already through `embed_states` (an agent
        embeds each frame once, when it arrives), read in place of `batch.states`."""
        return self(batch, state_embeddings)[:, -1]

    # ---------------------------------------------------------------- recurrent acting
    @property
    def supports_step(self) -> bool:
        return (self.cfg.layout is not TokenLayout.STATE_ONLY
                and self.cfg.token_order.state_last
                and all(is_recurrent(b) for b in self.blocks))

    def _refuse_step_order(self) -> None:
        if not self.cfg.token_order.state_last:
            raise ConfigError(f"token order {self.cfg.token_order.value} cannot act step by step (its action token "
                              f"a_t comes after the decision); use predict_last on a window, or token order "
                              f"{TokenOrder.RETURN_PREV_ACTION_STATE.value}")

    def init_cache(self, batch_size: int, device=None) -> list:
        self._refuse_step_order()
        if not self.supports_step:
            raise ConfigError(f"{self.cfg.block.value} blocks cannot act step by step; use predict_last on a window")
        return [block.init_cache(batch_size, device) for block in self.blocks]

    def step_tokens(self, state, prev_action, return_to_go, timestep) -> torch.Tensor:
        """One environment step's tokens, projected for the blocks: (B, 3, D) for B3LD (R_t,
        a_{t-1}, s_t), (B, 1, D) for BL3D. Shared by `step` and the exported recurrent graph."""
        parts = self._embed_step(state, prev_action, return_to_go, timestep)  # each (B, E)
        if self.cfg.layout is TokenLayout.B3LD:
            tokens = torch.stack(parts, dim=1)  # 3 x (B, E) -> (B, 3, E)
        else:
            tokens = torch.cat(parts, dim=-1)[:, None]  # (B, 3E) -> (B, 1, 3E)
        return self.input_proj(tokens)

    @torch.no_grad()
    def step(self, state, prev_action, return_to_go, timestep, cache):
        """One environment step: state (B, S), prev_action (B, A) (discrete: (B,) long),
        return_to_go (B, 1) already scaled, timestep (B,) long -> (action (B, A), cache).

        The step's tokens (R_t, a_{t-1}, s_t for B3LD, one token for BL3D) go through each layer
        as one chunk continuing from the cache; the decision is read at the last token (s_t).
        Token orders with s_t last only (r-aprev-s, aprev-r-s).
        """
        self._refuse_step_order()
        x = self.step_tokens(state, prev_action, return_to_go, timestep)
        new_cache = []
        for block, layer_cache in zip(self.blocks, cache):
            x, layer_cache = block.step_chunk(x, layer_cache)
            new_cache.append(layer_cache)
        return self._head(self.final_norm(x[:, -1])), new_cache


def _init_official_gpt2(module: nn.Module) -> None:
    """GPT-2's `_init_weights` as in kzl/decision-transformer's trajectory_gpt2.py (and DC's and
    DeMa's copies): normal(0.02) Linear / Embedding weights, zero biases (Mamba's dt bias included:
    that copy has no `_no_reinit`), LayerNorm ones and zeros; no residual scaling."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _zero_padded(t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, K, ...) `t` with zeros where the (B, K) mask is False."""
    keep = mask.view(*mask.shape, *[1] * (t.dim() - 2))  # (B, K) -> (B, K, 1, ...)
    return torch.where(keep, t, torch.zeros((), dtype=t.dtype, device=t.device))


def _zero_padding(batch: Batch) -> Batch:
    """`batch` with every input tensor zero at its padded positions (mask False)."""
    return dataclasses.replace(batch, **{name: _zero_padded(getattr(batch, name), batch.mask) for name in
                                         ("states", "actions", "prev_actions", "returns_to_go", "timesteps")})
