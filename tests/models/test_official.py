"""The `official` variant: the reference codes' initialisation and DeMa's unmasked zero padding.

Weight statistics are checked against what the reference codes draw (shared/PAPER.md, "The
official code's model", measured on the official code's fresh models), within sampling tolerance.
`ours` is pinned by checksums recorded from the code before `ModelConfig.init` existed.
"""

import dataclasses
import math

import pytest
import torch

from dema.errors import ConfigError
from dema.models import MODELS, build_policy, model_config
from dema.models.config import BlockKind, InitScheme, ModelConfig

from tiny_models import random_batch, tiny_config, tiny_policy

HOPPER_STATE, HOPPER_ACT = 11, 3


def _fresh(model, dataset="hopper-medium", seed=0, **overrides):
    torch.manual_seed(seed)
    cfg = dataclasses.replace(model_config(model, dataset), **overrides)
    return build_policy(cfg, HOPPER_STATE, HOPPER_ACT)


def _weights(policy):
    return {k: v.detach().double() for k, v in policy.state_dict().items()}


def _assert_std(t, expected, kurtosis, name):
    """Sample std within 5 standard errors of `expected` (kurtosis 1.8 uniform, 3 normal)."""
    tolerance = 5 * expected * math.sqrt((kurtosis - 1) / (4 * t.numel()))
    assert abs(t.std().item() - expected) < tolerance, f"{name}: std {t.std().item():.4f}, expected {expected:.4f}"


def _assert_kaiming_uniform(t, fan_in, name, scale=1.0):
    """PyTorch's default Linear weight: U(-b, b) with b = 1/sqrt(fan_in) (kaiming_uniform, a=sqrt(5))."""
    bound = scale / math.sqrt(fan_in)
    assert t.abs().max().item() <= bound + 1e-7, name
    _assert_std(t, bound / math.sqrt(3), 1.8, name)


# ----------------------------------------------------------------------------- initialisation

def test_official_dema_has_the_official_codes_weight_statistics():
    cfg = model_config("dema-official", "hopper-medium")
    policy = _fresh("dema-official")
    w = _weights(policy)
    E, D, Di, N = cfg.embed_dim, cfg.d_model, cfg.d_inner, cfg.d_state
    # the numbers of shared/PAPER.md: return 0.57 (fan_in 1), state 0.17 (fan_in 11), in_proj 0.07, out_proj 0.03
    _assert_kaiming_uniform(w["embed_return.weight"], 1, "embed_return")
    _assert_kaiming_uniform(w["embed_state.weight"], HOPPER_STATE, "embed_state")
    _assert_kaiming_uniform(w["embed_action.weight"], HOPPER_ACT, "embed_action")
    _assert_kaiming_uniform(w["input_proj.weight"], E, "input_proj")
    _assert_kaiming_uniform(w["action_head.weight"], D, "action_head")
    assert abs(w["embed_return.weight"].std().item() - 0.57) < 0.06
    assert abs(w["embed_state.weight"].std().item() - 0.17) < 0.02
    for i in range(cfg.n_layer):
        p = f"blocks.{i}.mixer."
        _assert_kaiming_uniform(w[p + "in_proj.weight"], D, p + "in_proj")
        _assert_kaiming_uniform(w[p + "ssm.x_proj.weight"], Di, p + "x_proj")
        # rescale_prenorm_residual: kaiming-uniform / sqrt(n_residuals_per_layer * n_layer), 1 residual per layer
        _assert_kaiming_uniform(w[p + "out_proj.weight"], Di, p + "out_proj", scale=1 / math.sqrt(cfg.n_layer))
        assert abs(w[p + "in_proj.weight"].std().item() - 0.07) < 0.01
        assert abs(w[p + "out_proj.weight"].std().item() - 0.03) < 0.005
        # Mamba's own initialisation is kept: dt bias = softplus^-1(dt), dt in [1e-3, 1e-1]; S4D-real A; D = 1
        dt = torch.nn.functional.softplus(w[p + "ssm.dt_proj.bias"])
        assert dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 1e-1 * (1 + 1e-5)
        bound = cfg.resolved_dt_rank ** -0.5
        assert w[p + "ssm.dt_proj.weight"].abs().max() <= bound
        torch.testing.assert_close(w[p + "ssm.A_log"], torch.log(torch.arange(1, N + 1.0)).repeat(Di, 1).double())
        assert torch.all(w[p + "ssm.D"] == 1)
    # mamba-ssm's _init_weights zeroes every Linear bias but the dt bias; Embeddings normal(0.02)
    for name in ("embed_return.bias", "embed_state.bias", "embed_action.bias", "input_proj.bias", "action_head.bias"):
        assert torch.all(w[name] == 0), name
    _assert_std(w["embed_timestep.weight"], 0.02, 3, "embed_timestep")


def test_official_dt_keeps_pytorch_defaults_outside_the_gpt2_trunk():
    cfg = model_config("dt-official", "hopper-medium")
    w = _weights(_fresh("dt-official"))
    H = cfg.d_model
    # DT's gym code: embeddings, embed_ln and predict_action keep PyTorch's defaults
    _assert_std(w["embed_timestep.weight"], 1.0, 3, "embed_timestep")  # nn.Embedding: N(0, 1)
    for name in ("embed_return.weight", "embed_return.bias"):  # Linear(1, H): U(-1, 1)
        assert w[name].abs().max() <= 1 and w[name].abs().max() > 0.9, name
        _assert_std(w[name], 1 / math.sqrt(3), 1.8, name)
    _assert_kaiming_uniform(w["embed_state.weight"], HOPPER_STATE, "embed_state")
    _assert_kaiming_uniform(w["embed_action.weight"], HOPPER_ACT, "embed_action")
    _assert_kaiming_uniform(w["action_head.weight"], H, "action_head")
    assert w["action_head.bias"].abs().max() <= 1 / math.sqrt(H) and torch.any(w["action_head.bias"] != 0)
    assert torch.all(w["embed_norm.weight"] == 1) and torch.all(w["embed_norm.bias"] == 0)
    # the GPT-2 trunk: normal(0.02), zero biases, and no residual scaling in DT's copy of GPT-2
    for i in range(cfg.n_layer):
        for name in ("mixer.c_attn", "mixer.c_proj", "mlp.c_fc", "mlp.c_proj"):
            key = f"blocks.{i}.{name}"
            _assert_std(w[key + ".weight"], 0.02, 3, key)
            assert torch.all(w[key + ".bias"] == 0), key


def test_official_dc_bc_and_dema_post_follow_their_reference_code():
    dc = _weights(_fresh("dc", init=InitScheme.OFFICIAL))
    _assert_std(dc["embed_timestep.weight"], 1.0, 3, "dc embed_timestep")
    _assert_std(dc["blocks.0.mlp.c_proj.weight"], 0.02, 3, "dc c_proj")
    assert torch.all(dc["blocks.0.mixer.proj.bias"] == 0)
    # kzl's MLPBCModel has no init of its own: PyTorch's defaults everywhere
    bc = _weights(_fresh("bc", init=InitScheme.OFFICIAL))
    _assert_kaiming_uniform(bc["embed_state.weight"], HOPPER_STATE, "bc embed_state")
    _assert_kaiming_uniform(bc["blocks.0.mlp.c_fc.weight"], 128, "bc c_fc")
    assert torch.any(bc["blocks.0.mlp.c_fc.bias"] != 0)
    # DeMa's post up-projection block is DT-code (a GPT-2 block whose attention is S6): GPT-2's init,
    # which ignores mamba-ssm's _no_reinit mark, covers the whole trunk
    post = _weights(_fresh("dema-post", init=InitScheme.OFFICIAL))
    _assert_std(post["blocks.0.mixer.x_proj.weight"], 0.02, 3, "post x_proj")
    assert torch.all(post["blocks.0.mixer.dt_proj.bias"] == 0)
    _assert_kaiming_uniform(post["embed_state.weight"], HOPPER_STATE, "post embed_state")


# Recorded from the code before ModelConfig.init existed (commit a6efec2), torch.manual_seed(0):
# per model (sum of all state-dict entries, sum of their squares, number of entries).
OURS_CHECKSUMS = {
    "dema": (-3.697556169, 1001.084708633, 31),
    "dema-bl3d": (12.097057214, 936.786186606, 31),
    "dema-post": (43.672831415, 406.816855387, 42),
    "dema-rnn": (-3.697556169, 1001.084708633, 31),
    "dt": (51.339043032, 52.799488602, 39),
    "dt-shared": (51.339043032, 52.799488602, 39),
    "dc": (44.544517809, 71.715884345, 39),
    "bc": (24.032703088, 24.334767003, 20),
    "dema@hopper-medium": (77649.372725681, 282219.926128681, 41),
    "dt@hopper-medium": (1031.739365664, 1229.886623809, 49),
}


def _checksum(policy):
    values = list(policy.state_dict().values())
    return (sum(float(v.double().sum()) for v in values), sum(float(v.double().square().sum()) for v in values),
            len(values))


@pytest.mark.parametrize("name", sorted(OURS_CHECKSUMS))
def test_ours_initialisation_is_unchanged(name):
    model, _, dataset = name.partition("@")
    torch.manual_seed(0)
    if dataset:
        policy = build_policy(model_config(model, dataset), HOPPER_STATE, HOPPER_ACT)
    else:
        policy = build_policy(tiny_config(model), 5, 3)
    assert policy.cfg.init is InitScheme.OURS
    total, squares, count = _checksum(policy)
    expected_total, expected_squares, expected_count = OURS_CHECKSUMS[name]
    assert count == expected_count
    assert total == pytest.approx(expected_total, rel=1e-6, abs=1e-6)
    assert squares == pytest.approx(expected_squares, rel=1e-6)


# ----------------------------------------------------------------------------- padding

def _left_pad(real, pad, fill=0.0):
    padded = dataclasses.replace(real)
    for name in ("states", "actions", "prev_actions", "returns_to_go", "timesteps"):
        value = getattr(real, name)
        padded_value = torch.full((value.shape[0], pad, *value.shape[2:]), fill, dtype=value.dtype)
        setattr(padded, name, torch.cat([padded_value, value], dim=1))
    padded.mask = torch.cat([torch.zeros(real.batch_size, pad, dtype=torch.bool), real.mask], dim=1)
    return padded


@pytest.mark.parametrize("model", ["dema-official", "dema", "dt", "dc"])
def test_unmasked_zero_padding_reaches_the_valid_positions(model):
    masked = tiny_policy(model, mask_padding=True)
    unmasked = tiny_policy(model, mask_padding=False)  # same seed: the same weights
    real = random_batch(batch_size=2, length=3, start=0)
    padded = _left_pad(real, pad=3)  # zeros, as the padding contract says
    # masked: the padding is invisible; unmasked: the zero tokens carry the embeddings' biases
    # (and timestep embedding) through the mixer, so every valid decision changes
    torch.testing.assert_close(masked(padded)[:, 3:], masked(real), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(unmasked(real), masked(real), rtol=1e-12, atol=1e-12)  # no padding: no difference
    difference = (unmasked(padded)[:, 3:] - masked(padded)[:, 3:]).abs().amax(dim=-1)  # (B, K)
    assert torch.all(difference > 1e-8), difference
    # what sits in the padded positions does not matter: it is fed as zeros, as the official code pads
    garbage = _left_pad(real, pad=3, fill=3.0)
    torch.testing.assert_close(unmasked(garbage), unmasked(padded), rtol=1e-12, atol=1e-12)


def test_official_presets():
    dema, official = model_config("dema", "hopper-medium"), model_config("dema-official", "hopper-medium")
    assert official.init is InitScheme.OFFICIAL and official.mask_padding is False
    assert official.position_embedding is True and official.embed_dim == 128 and dema.embed_dim == 256
    assert dataclasses.replace(official, init=dema.init, mask_padding=True, position_embedding=False,
                               embed_dim=dema.embed_dim) == dema
    assert model_config("dema-official", "hopper-medium-replay").embed_dim == 128
    assert model_config("dema-official", "walker2d-medium").embed_dim == model_config("dema", "walker2d-medium").embed_dim
    dt, dt_official = model_config("dt", "hopper-medium"), model_config("dt-official", "hopper-medium")
    assert dt_official.mask_padding is True  # DT masks padding with its attention mask
    assert dataclasses.replace(dt_official, init=InitScheme.OURS) == dt
    assert {"dema-official", "dt-official"} <= set(MODELS)


# ----------------------------------------------------------------------------- configs

def test_old_config_without_the_new_keys_loads_with_the_defaults():
    old = ModelConfig(block=BlockKind.ATTENTION, n_layer=2).to_dict()
    del old["init"], old["mask_padding"]
    cfg = ModelConfig.from_dict(old)
    assert cfg.init is InitScheme.OURS and cfg.mask_padding is True
    assert cfg == ModelConfig(block=BlockKind.ATTENTION, n_layer=2)
    official = model_config("dema-official", "hopper-medium")
    assert official.to_dict()["init"] == "official"
    assert ModelConfig.from_dict(official.to_dict()) == official
    with pytest.raises(ConfigError, match="init='gpt2' is not one of"):
        ModelConfig.from_dict({**old, "init": "gpt2"})


def test_official_grid_loads():
    from dema.experiments.grid import load_grid

    grid = load_grid("official")
    assert set(grid.models) == {"dema-official", "dt-official"}
    assert len(grid.cells()) == 3 * 2 * 3
