"""The non-Mamba sequence mixers: causal self-attention (DT) and DC's causal convolution.

Every mixer maps (B, L, D) -> (B, L, D), takes `mask` (B, L) (False at left-padded positions) and
guarantees that outputs at real positions do not depend on padded ones.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    """GPT-2 multi-head causal self-attention (Decision Transformer's mixer)."""

    def __init__(self, d_model: int, n_head: int, dropout: float):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(d_model, 3 * d_model)
        self.c_proj = nn.Linear(d_model, d_model)
        self.c_proj._is_residual_projection = True
        self.attn_dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.c_attn(x).split(width, dim=-1)
        # (B, L, D) -> (B, H, L, D/H)
        q, k, v = (t.view(batch, length, self.n_head, -1).transpose(1, 2) for t in (q, k, v))
        allowed = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()  # (L, L) causal
        if mask is not None:
            # Real queries never see padded keys; a padded query may see itself so its softmax is defined.
            # a float identity compared to 0, not torch.eye(dtype=bool): ONNX Runtime has no bool EyeLike (dema export)
            eye = torch.eye(length, device=x.device) > 0
            allowed = allowed & (mask[:, None, :] | eye)  # (B, L, L)
            allowed = allowed[:, None]  # (B, 1, L, L), broadcast over heads
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                           dropout_p=self.attn_dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(batch, length, width)  # (B, H, L, D/H) -> (B, L, D)
        return self.resid_dropout(self.c_proj(y))


class CausalConvMixer(nn.Module):
    """Decision Convformer's token mixer: a causal depthwise convolution over a window of tokens,
    with one filter bank per token type (return, action, state), as in DC (Kim et al., ICLR 2024).

    Token i of type i % n_types is mixed by that type's filters over tokens i-W+1..i.
    """

    def __init__(self, d_model: int, window: int, n_token_types: int, dropout: float):
        super().__init__()
        self.window, self.n_types = window, n_token_types
        # one depthwise filter per (channel, token type): out channel c * n_types + t
        self.conv = nn.Conv1d(d_model, d_model * n_token_types, window, groups=d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.proj._is_residual_projection = True
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, length, width = x.shape
        x = x.transpose(1, 2)  # (B, L, D) -> (B, D, L)
        if mask is not None:
            x = x * mask[:, None, :]  # padded tokens look exactly like the conv's own zero padding
        y = self.conv(F.pad(x, (self.window - 1, 0)))  # (B, D * types, L)
        y = y.view(batch, width, self.n_types, length)  # (B, D * types, L) -> (B, D, types, L)
        token_type = torch.arange(length, device=x.device) % self.n_types  # (L,)
        index = token_type.view(1, 1, 1, length).expand(batch, width, 1, length)
        y = y.gather(2, index).squeeze(2).transpose(1, 2)  # (B, D, L) -> (B, L, D)
        return self.dropout(self.proj(y))


class MLP(nn.Module):
    def __init__(self, d_model: int, ratio: int, activation: nn.Module, dropout: float):
        super().__init__()
        self.c_fc = nn.Linear(d_model, ratio * d_model)
        self.act = activation
        self.c_proj = nn.Linear(ratio * d_model, d_model)
        self.c_proj._is_residual_projection = True
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))
