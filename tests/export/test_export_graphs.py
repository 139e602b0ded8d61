"""The exported graphs (dema.export.graphs) compute the trunk's own decision, and so does their ONNX model.

In float64, with weights that float32 holds exactly (the trunk casts A, D and the dt bias to
float32), the recurrent step equals `SequencePolicy.step` and the window equals `predict_last` to
1e-12, for every model of the trunk, on left-padded windows with garbage in the padding; through
ONNX Runtime (float32) the actions equal the PyTorch policy's to 1e-5.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dema.errors import ConfigError
from dema.export.check import largest_difference
from dema.export.graphs import RecurrentStep, Window, unsupported_reason
from dema.export.onnx import onnx_model
from dema.models import MODELS, build_policy, model_config
from dema.models.config import TokenLayout
from dema.run import NormStats

from tiny_models import ACT_DIM, STATE_DIM, garbage_left_padded, random_batch, tiny_policy

MEAN = np.linspace(-1.0, 1.0, STATE_DIM)
STD = np.linspace(0.5, 2.0, STATE_DIM)
STATS = NormStats(MEAN.astype(np.float32), STD.astype(np.float32), 1000.0, False)
STEP_VARIANTS = {"b3ld": {}, "bl3d": dict(layout=TokenLayout.BL3D),
                 "timestep-embedding+norm": dict(position_embedding=True, embed_norm=True),
                 "three-layers-conv2": dict(n_layer=3, d_conv=2), "no-input-proj": dict(embed_dim=8)}


def trained_looking(policy, scale=0.3):
    """`policy` with every weight moved by noise (a fresh one has zero biases and a tiny head) and
    rounded to float32's values."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
            p.copy_(p.float().to(p.dtype))
    return policy


def raw(states: torch.Tensor) -> torch.Tensor:
    """Raw observations that normalise to `states` (the graphs take raw ones)."""
    return states * torch.as_tensor(STD) + torch.as_tensor(MEAN)


@pytest.mark.parametrize("overrides", STEP_VARIANTS.values(), ids=STEP_VARIANTS.keys())
def test_recurrent_step_equals_policy_step(overrides):
    policy = trained_looking(tiny_policy("dema-rnn", **overrides))
    graph = RecurrentStep(policy, MEAN, STD)
    batch = random_batch(3, 9)
    cache = policy.init_cache(3)
    state = [torch.zeros(3, *shape, dtype=torch.float64) for _, shape in graph.state_shapes()]
    for t in range(9):
        args = (batch.prev_actions[:, t], batch.returns_to_go[:, t], batch.timesteps[:, t])
        expected, cache = policy.step(batch.states[:, t], *args, cache)
        action, *state = graph(raw(batch.states[:, t]), *args, *state)
        torch.testing.assert_close(action, expected, rtol=0, atol=1e-12)
    for layer, c in enumerate(cache):  # the explicit state is the cache (conv inputs oldest first)
        torch.testing.assert_close(state[2 * layer], c.conv_state.transpose(1, 2), rtol=0, atol=1e-12)
        torch.testing.assert_close(state[2 * layer + 1], c.ssm_state, rtol=0, atol=1e-12)


def test_recurrent_step_of_the_post_up_projection_block():
    policy = trained_looking(tiny_policy("dema-post", recurrent=True))
    graph = RecurrentStep(policy, MEAN, STD)
    batch, cache = random_batch(2, 5), policy.init_cache(2)
    state = [torch.zeros(2, *shape, dtype=torch.float64) for _, shape in graph.state_shapes()]
    for t in range(5):
        args = (batch.prev_actions[:, t], batch.returns_to_go[:, t], batch.timesteps[:, t])
        expected, cache = policy.step(batch.states[:, t], *args, cache)
        action, *state = graph(raw(batch.states[:, t]), *args, *state)
        torch.testing.assert_close(action, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("model", MODELS)
def test_window_equals_predict_last(model):
    """Every model's K-step window, full and left-padded (garbage in the padding where the model masks
    it; dema-official reads its padding, which the agent fills with zeros)."""
    policy = trained_looking(tiny_policy(model))
    graph = Window(policy, MEAN, STD)
    pad_value = 3.0 if policy.cfg.mask_padding else 0.0
    for batch in (random_batch(2, 6), garbage_left_padded(random_batch(2, 2, seed=4), 4, pad_value)):
        actions = torch.cat([batch.prev_actions[:, 1:], torch.zeros_like(batch.prev_actions[:, -1:])], dim=1)
        expected = policy.predict_last(dataclasses.replace(batch, actions=actions))
        states = torch.where(batch.mask[..., None], raw(batch.states), batch.states)  # padding stays as given
        got = graph(states, batch.prev_actions, batch.returns_to_go, batch.timesteps, batch.mask)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("model", ["dema-rnn", "dema", "dt", "dc", "bc", "dema-post"])
def test_onnx_runtime_acts_as_the_policy(model):
    """Exported, loaded in ONNX Runtime, fed back its own state: the actions of 2 x 9 decisions equal the
    PyTorch policy's (recurrent step, or a window sliding over left-padded steps) to 1e-5."""
    policy = trained_looking(tiny_policy(model, dtype=torch.float32))
    cfg = policy.cfg
    model_bytes, signature = onnx_model(policy, STATS.state_mean, STATS.state_std, cfg.recurrent, cfg.context_len)
    assert signature["kind"] == ("recurrent-step" if cfg.recurrent else "window")
    worst, decisions = largest_difference(policy, STATS, cfg, model_bytes, signature, steps=9)
    assert decisions == 18 and worst < 1e-5, worst


def test_the_hopper_preset_exports_and_acts_as_the_policy():
    """The paper's RNN-like DeMa at hopper-medium's sizes (3 layers, Di 128, N 64)."""
    torch.manual_seed(0)
    policy = trained_looking(build_policy(model_config("dema-rnn", "hopper-medium"), 11, 3).eval(), scale=0.05)
    stats = NormStats(np.zeros(11, np.float32), np.ones(11, np.float32), 1000.0, False)
    model_bytes, signature = onnx_model(policy, stats.state_mean, stats.state_std, True, 20)
    assert [s["input"] for s in signature["state"]] == [f"{k}.{i}" for i in range(3) for k in ("conv_state", "ssm_state")]
    assert signature["state"][1]["shape"] == ["batch", 128, 64] and signature["state"][0]["shape"] == ["batch", 3, 128]
    worst, _ = largest_difference(policy, stats, policy.cfg, model_bytes, signature, steps=6, batch=1)
    assert worst < 1e-5, worst


def test_exporting_leaves_the_policy_as_it_was():
    policy = tiny_policy("dema-rnn", dtype=torch.float64).train()
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    onnx_model(policy, MEAN, STD, True, 6)
    assert policy.training and all(v.dtype == torch.float64 for v in policy.state_dict().values())
    assert all(torch.equal(before[k], v) for k, v in policy.state_dict().items())


def test_what_cannot_be_exported_is_one_error():
    frames = dict(state_dim=(4, 84, 84), act_dim=4, discrete=True)
    assert unsupported_reason(build_policy(model_config("dema-rnn", "atari/Breakout"), **frames), True) is None
    window = build_policy(model_config("dt", "atari/Breakout"), **frames)
    assert "re-read through the CNN" in unsupported_reason(window, False)
    with pytest.raises(ConfigError, match="cannot be exported: it acts on frames"):
        onnx_model(window, np.zeros(1), np.ones(1), False, 30)
    assert unsupported_reason(tiny_policy("dt"), True).startswith("it is marked recurrent")
    assert unsupported_reason(tiny_policy("dema-rnn"), True) is None
    assert unsupported_reason(tiny_policy("dt"), False) is None
    assert (STATE_DIM, ACT_DIM) == (5, 3)


def test_atari_step_exports_with_its_cnn():
    """RNN-like DeMa on Breakout's frames (tiny trunk, the Nature CNN): logits to 1e-5 through ONNX Runtime."""
    cfg = dataclasses.replace(model_config("dema-rnn", "atari/Breakout"), n_layer=1, embed_dim=16, d_model=16,
                              d_state=4)
    policy = build_policy(cfg, (4, 84, 84), 4, discrete=True).eval()
    stats = NormStats(np.zeros(1, np.float32), np.full(1, 255.0, np.float32), 1.0, False)
    model_bytes, signature = onnx_model(policy, stats.state_mean, stats.state_std, True, cfg.context_len)
    assert signature["discrete"] and [o["name"] for o in signature["outputs"]][0] == "logits"
    worst, decisions = largest_difference(policy, stats, cfg, model_bytes, signature, steps=4)
    assert decisions == 8 and worst < 1e-5, worst
