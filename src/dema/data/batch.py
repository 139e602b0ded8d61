"""The one batch type every model of the trunk consumes, and its padding contract.

Token alignment (used identically in training and when acting; the official DeMa code differs
between the two, see docs/ARCHITECTURE.md):

    step t of an episode contributes (R_t, a_{t-1}, s_t), and the model predicts a_t from s_t.
    R_t = scale^-1 * sum_{t' >= t} r_{t'}  (return-to-go INCLUDING the reward of step t)
    a_{-1} = 0 (the zero vector; for discrete actions, index `n_actions`, a reserved "no action")

That is the default token order (`ModelConfig.token_order`, "r-aprev-s"): the action token of
step t embeds `prev_actions`. Decision Transformer's order ("r-s-a", B3LD only) builds the
tokens of step t as (R_t, s_t, a_t) from the same batch, embedding `actions` instead, and still
predicts a_t at the s_t token, which comes before the a_t token and so never sees it; s_t sees
a_{t-1} through the previous step's action token (the window's first step sees no action).
When acting, `actions` holds the past actions of the window and zero at its last position.

Padding contract: windows shorter than K are LEFT-padded. At padded positions every tensor is
zero (states, actions, prev_actions, returns_to_go, timesteps) and mask is False. Models guarantee
that padded positions never influence the outputs at valid positions (tested), so the pad value
is irrelevant to the result; zero is used everywhere, in training and when acting.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class Batch:
    """A batch of K-step windows (or whole trajectories, right-aligned, for RNN-like training)."""

    states: torch.Tensor  # (B, K, S) float, normalised observations s_t
    actions: torch.Tensor  # (B, K, A) float targets a_t (also the a_t tokens in order r-s-a); discrete: (B, K) long
    prev_actions: torch.Tensor  # (B, K, A) float a_{t-1}; discrete: (B, K) long
    returns_to_go: torch.Tensor  # (B, K, 1) float R_t / scale
    timesteps: torch.Tensor  # (B, K) long, step index within the episode
    mask: torch.Tensor  # (B, K) bool, True at real (not padded) positions

    def to(self, device) -> "Batch":
        return Batch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @property
    def batch_size(self) -> int:
        return self.states.shape[0]

    @property
    def length(self) -> int:
        return self.states.shape[1]
