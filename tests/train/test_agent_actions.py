"""The one window agent acts bit for bit as the agents it replaced (dema before issue 28: `WindowAgent`
and `RecurrentAgent` for vector states, `AtariAgent` for frames), on tiny models of every token order.

The reference below is that acting written out step by step from the whole history: the window
rebuilt from the last K steps and left-padded with zeros, the frames' CNN embeddings read with the
policy's state encoder swapped for the identity (how `AtariAgent` did it), the Atari actions sampled
from the softmax with a generator seeded with the round's seed, the fused CPU reads where the old
agents took them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dema.data.batch import Batch
from dema.envs import env_spec
from dema.evaluation.agent import RecurrentAgent, SoftmaxSampling, TanhHead, WindowAgent, make_agent
from dema.models import build_policy, model_config
from dema.models.fused_step import fused_step_for
from dema.run import NormStats

K, N, STEPS, SEED = 3, 2, 7, 5


def _tiny(model: str, dataset: str):
    return dataclasses.replace(model_config(model, dataset), n_layer=2, embed_dim=16, d_model=16, d_state=4, n_head=2,
                               context_len=K, dropout=0.0, max_ep_len=64)


def _episode(spec, rng):
    """STEPS observations of N environments and the rewards that follow each action."""
    if spec.atari:
        obs = rng.integers(0, 256, (STEPS, N, *spec.state_shape), dtype=np.uint8)
    else:
        obs = rng.normal(size=(STEPS, N, spec.obs_dim)).astype(np.float32)
    return obs, (rng.normal(size=(STEPS, N)) * 3).astype(np.float32)


def _reference(policy, cfg, stats, spec, obs, rewards, target):
    """(STEPS, N, ...) actions as the agents before issue 28 took them."""
    discrete = spec.discrete
    generator = torch.Generator().manual_seed(SEED)
    mean, std = (torch.as_tensor(v, dtype=torch.float32) for v in (stats.state_mean, stats.state_std))
    rtg = torch.full((N, 1), target / stats.reward_scale)
    prev = torch.full((N,), spec.act_dim) if discrete else torch.zeros(N, spec.act_dim)
    fused = fused_step_for(policy, "cpu")
    cache = (fused.init_cache(N) if fused else policy.init_cache(N)) if cfg.recurrent else None
    reader = policy if cfg.recurrent or fused is None else fused
    history, out = [], []
    for t in range(STEPS):
        if t and not stats.delayed:
            rtg = rtg - torch.as_tensor(rewards[t - 1], dtype=torch.float32).reshape(-1, 1) / stats.reward_scale
        if spec.atari:  # AtariAgent: frames / 255, whatever the statistics
            state = torch.as_tensor(obs[t]).float() / 255.0
        else:
            state = (torch.as_tensor(obs[t], dtype=torch.float32).reshape(N, -1) - mean) / std
        step = torch.full((N,), t)
        if cfg.recurrent:
            decision, cache = (fused or policy).step(state, prev, rtg, step, cache)
        else:
            with torch.no_grad():
                history.append((policy.embed_state(state) if spec.atari else state, prev, rtg, step))
            window = history[-K:]
            pad = K - len(window)

            def column(i):  # (N, K, ...): left padding of zeros, then the window's steps
                real = torch.stack([h[i] for h in window], 1)
                return torch.cat([real.new_zeros(N, pad, *real.shape[2:]), real], 1)

            prev_actions = column(1)
            last = torch.full((N, 1), spec.act_dim) if discrete else torch.zeros(N, 1, spec.act_dim)
            batch = Batch(states=column(0), actions=torch.cat([prev_actions[:, 1:], last], 1),
                          prev_actions=prev_actions, returns_to_go=column(2), timesteps=column(3),
                          mask=torch.cat([torch.zeros(N, pad, dtype=torch.bool), torch.ones(N, len(window), dtype=torch.bool)], 1))
            if spec.atari:  # AtariAgent: the encoder swapped for the identity, the embeddings as states
                encoder, policy.embed_state = policy.embed_state, torch.nn.Identity()
                try:
                    decision = policy.predict_last(batch)
                finally:
                    policy.embed_state = encoder
            else:
                decision = reader.predict_last(batch)
        if discrete:
            decision = torch.multinomial(torch.softmax(decision.float(), -1), 1, generator=generator).squeeze(1)
        prev = decision
        out.append(decision.numpy())
    return np.stack(out)


def _acted(agent, obs, rewards, target):
    agent.reset(target, seed=SEED)
    return np.stack([agent.act(obs[t], rewards[t - 1] if t else None) for t in range(STEPS)])


@pytest.mark.parametrize("model, delayed", [("dema", False), ("dema", True), ("dt", False), ("dc", False),
                                            ("bc", False), ("dema-bl3d", False), ("dema-official", False),
                                            ("dema-rnn", False), ("dema-rnn", True)])
def test_vector_states_act_as_before(model, delayed):
    spec = env_spec("hopper")
    cfg = _tiny(model, "hopper-medium")
    torch.manual_seed(0)
    policy = build_policy(cfg, spec.obs_dim, spec.act_dim).eval()
    rng = np.random.default_rng(1)
    stats = NormStats(rng.normal(size=11).astype(np.float32), (rng.random(11) + 0.5).astype(np.float32), 1000.0,
                      delayed)
    obs, rewards = _episode(spec, rng)
    agent = make_agent(policy, stats, spec, cfg, N)
    assert isinstance(agent, RecurrentAgent if cfg.recurrent else WindowAgent) and isinstance(agent.rule, TanhHead)
    expected = _reference(policy, cfg, stats, spec, obs, rewards, 3600.0)
    np.testing.assert_array_equal(_acted(agent, obs, rewards, 3600.0), expected)


@pytest.mark.parametrize("model", ["dema", "dt", "dema-official", "dema-rnn"])  # each order, padding, the cache
def test_frames_act_as_before(model):
    """Atari: the decisions (logits) and the sampled actions, with each frame embedded once."""
    spec = env_spec("pong")
    cfg = _tiny(model, "pong")
    torch.manual_seed(0)
    policy = build_policy(cfg, spec.state_shape, spec.act_dim, discrete=True).eval()
    # heads scaled up: the tiny models' logits are near zero, so sampling would hide small differences
    with torch.no_grad():
        policy.action_head.weight.mul_(30.0)
    stats = NormStats(np.zeros(1, np.float32), np.full(1, 255.0, np.float32), 1.0, False)
    obs, rewards = _episode(spec, np.random.default_rng(1))
    agent = make_agent(policy, stats, spec, cfg, N)
    assert isinstance(agent.rule, SoftmaxSampling) and (cfg.recurrent or agent.embed_once)
    expected = _reference(policy, cfg, stats, spec, obs, rewards, 20.0)
    acted = _acted(agent, obs, rewards, 20.0)
    np.testing.assert_array_equal(acted, expected)
    assert len(np.unique(acted)) > 1  # the sampling is exercised, not one certain action
