"""The fused recurrent step (dema.models.fused_step) equals SequencePolicy.step to 1e-5.

Checked on random weights (tiny shapes in every supported variant, and the hopper preset's own
shapes), on a run trained by the training loop, through the agent `dema eval` acts with, and the
policies it does not cover keep the PyTorch step.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dema.models import build_policy, model_config
from dema.models.config import TokenLayout
from dema.models.fused_step import FusedRecurrentStep, fused_step_for, unsupported_reason
from dema.scan import compute_paths

from tiny_models import ACT_DIM, STATE_DIM, tiny_policy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))  # the training tests' tiny run
from train_helpers import tiny_config as tiny_train_config, write_tiny_hdf5  # noqa: E402

TOL = 1e-5


def perturbed(policy, seed=0, scale=0.3):
    """Every weight moved off its initialisation (zero biases, ones norms, S4D A), float32."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return policy.float().eval()


def assert_steps_agree(policy, steps=12, batch=2, seed=1):
    """Acting `steps` steps from the same inputs: actions and both caches agree at every step."""
    fused = FusedRecurrentStep(policy)
    cache_t, cache_f = policy.init_cache(batch), fused.init_cache(batch)
    g = torch.Generator().manual_seed(seed)
    prev = torch.zeros(batch, policy.act_dim)
    rtg = torch.full((batch, 1), 3.0)
    for t in range(steps):
        state = torch.randn(batch, policy.state_dim, generator=g)
        timestep = torch.full((batch,), t, dtype=torch.long)
        want, cache_t = policy.step(state, prev, rtg, timestep, cache_t)
        got, cache_f = fused.step(state, prev, rtg, timestep, cache_f)
        assert got.shape == want.shape and got.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=0, atol=TOL)
        prev, rtg = want, rtg - 0.05 * torch.rand(batch, 1, generator=g)
    for layer, c in enumerate(cache_t):
        torch.testing.assert_close(torch.from_numpy(cache_f.ssm[layer]).transpose(1, 2), c.ssm_state,
                                   rtol=1e-5, atol=TOL)
        torch.testing.assert_close(torch.from_numpy(cache_f.conv[layer]).transpose(1, 2), c.conv_state,
                                   rtol=1e-5, atol=TOL)


VARIANTS = {
    "b3ld": {},
    "bl3d": {"layout": TokenLayout.BL3D},
    "time-and-embed-norm": {"position_embedding": True, "embed_norm": True},
    "no-input-proj": {"embed_dim": 8},  # embed_dim == d_model: input_proj is the identity
    "three-layers-d_conv-2": {"n_layer": 3, "d_conv": 2},
}


@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=VARIANTS.keys())
def test_random_weights(overrides):
    policy = perturbed(tiny_policy("dema-rnn", dtype=torch.float32, **overrides))
    assert unsupported_reason(policy) is None
    assert_steps_agree(policy)


def test_random_weights_at_the_hopper_preset():
    """The preset's own shapes (E 256, D 64, Di 128, N 64, 3 layers) at batch 1 and 3."""
    torch.manual_seed(0)
    policy = perturbed(build_policy(model_config("dema-rnn", "hopper-medium"), 11, 3), scale=0.05)
    assert_steps_agree(policy, steps=6, batch=1)
    assert_steps_agree(policy, steps=4, batch=3)


def test_a_trained_run_through_the_agent(tmp_path):
    """A dema-rnn run trained by the training loop: the agent `dema eval` uses takes the fused step,
    and its decisions on a dataset episode equal the PyTorch step's."""
    from dema.data.load import load_dataset
    from dema.evaluation.agent import RecurrentAgent, TanhHead
    from dema.evaluation.evaluate import load_policy, load_run
    from dema.run import NormStats
    from dema.train.loop import train

    data = write_tiny_hdf5(tmp_path / "hopper-medium-tiny.hdf5")
    config = tiny_train_config(data, tmp_path / "runs", "dema-rnn", updates=40)
    config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, lr=3e-3))
    run_dir = train(config, log=lambda *_: None).run_dir
    run = load_run(run_dir)
    policy = load_policy(run, run.path / "model.safetensors").eval()
    fresh = build_policy(run.config.model, state_dim=run.state_dim, act_dim=run.act_dim)
    moved = max((a - b).abs().max().item() for a, b in zip(policy.state_dict().values(), fresh.state_dict().values()))
    assert moved > 1e-3  # trained weights, not the initialisation

    dataset = load_dataset(data)
    stats = NormStats(dataset.observations.mean(0), dataset.observations.std(0) + 1e-6, 1000.0, False)
    agents = [RecurrentAgent(policy, stats, 1, TanhHead(3)) for _ in range(2)]
    for agent in agents:
        agent.reset(target_return=3600.0)
    agents[1]._fused = None  # the PyTorch step, on its own cache
    agents[1].cache = policy.init_cache(1)
    assert agents[0]._fused is not None
    reward = None
    for t in range(30):
        obs = dataset.observations[t][None]
        fused, plain = (agent.act(obs, reward) for agent in agents)
        np.testing.assert_allclose(fused, plain, rtol=0, atol=TOL)
        reward = dataset.rewards[t: t + 1]


def test_policies_it_does_not_cover_keep_the_torch_step():
    for model, reason in (("dt", "block attention"), ("dema-post", "block mamba-post-up"), ("dema", None)):
        policy = tiny_policy(model, dtype=torch.float32)
        got = unsupported_reason(policy)
        assert (got is None) if reason is None else got.startswith(reason), (model, got)
    policy = tiny_policy("dema-rnn", dtype=torch.float32)
    assert isinstance(fused_step_for(policy), FusedRecurrentStep)
    assert fused_step_for(policy, "cuda") is None
    assert "float32" in unsupported_reason(tiny_policy("dema-rnn", dtype=torch.float64))
    with compute_paths(fused_step=False):
        assert fused_step_for(policy) is None
        with pytest.raises(ValueError, match="DEMA_FUSED_STEP=0"):
            FusedRecurrentStep(policy)
    with compute_paths(fused_step=True):
        assert isinstance(fused_step_for(policy), FusedRecurrentStep)


def test_state_and_action_sizes_of_the_tiny_models():
    """The tiny models' sizes differ from the preset's: the kernel reads every size from its arrays."""
    policy = tiny_policy("dema-rnn", dtype=torch.float32)
    assert (policy.state_dim, policy.act_dim) == (STATE_DIM, ACT_DIM)
    fused = FusedRecurrentStep(policy)
    action, _ = fused.step(torch.zeros(4, STATE_DIM), torch.zeros(4, ACT_DIM), torch.ones(4, 1),
                           torch.zeros(4, dtype=torch.long), fused.init_cache(4))
    assert action.shape == (4, ACT_DIM) and bool((action.abs() <= 1).all())


def padded_windows(policy, batch=3, steps=7, seed=2):
    """Left-padded windows of 7, 4 and 1 real steps (the agent's first steps), random inputs."""
    from tiny_models import random_batch

    window = random_batch(batch, steps, dtype=torch.float32, seed=seed)
    if policy.state_dim != STATE_DIM:
        g = torch.Generator().manual_seed(seed)
        window = dataclasses.replace(window, states=torch.randn(batch, steps, policy.state_dim, generator=g),
                                     prev_actions=torch.rand(batch, steps, policy.act_dim, generator=g) * 2 - 1,
                                     actions=torch.rand(batch, steps, policy.act_dim, generator=g) * 2 - 1)
    real = torch.tensor([steps, 4, 1])[:batch]
    mask = torch.arange(steps)[None] >= (steps - real)[:, None]
    zero = lambda t: t * mask.view(*mask.shape, *[1] * (t.dim() - 2)).to(t.dtype)  # noqa: E731
    return dataclasses.replace(window, mask=mask, states=zero(window.states), prev_actions=zero(window.prev_actions),
                               returns_to_go=zero(window.returns_to_go), timesteps=zero(window.timesteps))


@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=VARIANTS.keys())
def test_window_equals_predict_last(overrides):
    """Transformer-like DeMa: the fused window read equals the full forward's last prediction."""
    policy = perturbed(tiny_policy("dema", dtype=torch.float32, **overrides))
    window = padded_windows(policy)
    torch.testing.assert_close(FusedRecurrentStep(policy).predict_last(window), policy.predict_last(window),
                               rtol=0, atol=TOL)


def test_window_at_the_hopper_preset_and_unpadded():
    torch.manual_seed(0)
    policy = perturbed(build_policy(model_config("dema", "hopper-medium"), 11, 3), scale=0.05)
    window = padded_windows(policy, steps=20)
    full = dataclasses.replace(window, mask=torch.ones_like(window.mask))
    fused = FusedRecurrentStep(policy)
    for w in (window, full):
        torch.testing.assert_close(fused.predict_last(w), policy.predict_last(w), rtol=0, atol=TOL)
