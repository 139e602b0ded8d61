"""The token order of DeMa's Atari code, (a_{t-1}, R_t, s_t): used by the Atari presets, acts step by step."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dema.data.batch import Batch
from dema.models import build_policy, model_config
from dema.models.config import TokenOrder


def _policy(model: str, order: TokenOrder):
    cfg = dataclasses.replace(model_config(model, "hopper-medium"), n_layer=2, embed_dim=12, d_model=8, d_state=4,
                              dropout=0.0, max_ep_len=64, context_len=6, token_order=order)
    torch.manual_seed(0)
    return build_policy(cfg, 5, 4, discrete=True).double().eval()


def _batch(length=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    return Batch(states=torch.randn(2, length, 5, generator=g, dtype=torch.float64),
                 actions=torch.randint(0, 4, (2, length), generator=g),
                 prev_actions=torch.randint(0, 5, (2, length), generator=g),  # 4 = the reserved a_{-1}
                 returns_to_go=torch.randn(2, length, 1, generator=g, dtype=torch.float64),
                 timesteps=torch.arange(3, 3 + length).repeat(2, 1), mask=torch.ones(2, length, dtype=torch.bool))


def test_atari_presets_use_the_atari_order():
    for model in ("dema", "dema-bl3d", "dema-post", "dema-rnn"):
        assert model_config(model, "pong").token_order is TokenOrder.PREV_ACTION_RETURN_STATE
        assert model_config(model, "hopper-medium").token_order is TokenOrder.RETURN_PREV_ACTION_STATE
    assert model_config("dt", "breakout").token_order is TokenOrder.RETURN_STATE_ACTION  # DT's own


@pytest.mark.parametrize("model", ["dema", "dema-bl3d", "dema-rnn"])
def test_step_by_step_equals_the_full_forward(model):
    policy = _policy(model, TokenOrder.PREV_ACTION_RETURN_STATE)
    batch = _batch()
    assert policy.supports_step
    cache = policy.init_cache(2)
    stepped = []
    for t in range(batch.length):
        logits, cache = policy.step(batch.states[:, t], batch.prev_actions[:, t], batch.returns_to_go[:, t],
                                    batch.timesteps[:, t], cache)
        stepped.append(logits)
    torch.testing.assert_close(torch.stack(stepped, 1), policy(batch), rtol=1e-10, atol=1e-12)


def test_the_order_is_its_own_and_never_sees_a_t():
    batch = _batch()
    atari = _policy("dema", TokenOrder.PREV_ACTION_RETURN_STATE)
    other = _policy("dema", TokenOrder.RETURN_PREV_ACTION_STATE)  # same weights (same seed), other order
    assert not torch.allclose(atari(batch), other(batch))
    changed = dataclasses.replace(batch, actions=(batch.actions + 1) % 4)
    torch.testing.assert_close(atari(changed), atari(batch), rtol=0, atol=0)
