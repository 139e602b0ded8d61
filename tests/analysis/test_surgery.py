"""Layer surgery: the hook is exact, the identity is the identity, manipulations change the actions."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
import torch

from dema.analysis.runs import load_trained
from dema.analysis.surgery import (Manipulation, SurgeryPolicy, default_manipulations, mamba_layers, overrides,
                                   record_scan_inputs, run_surgery)
from dema.attention import hidden_attention
from dema.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from tiny_models import random_batch, tiny_policy  # noqa: E402


def _window(policy, length=6, seed=1):
    batch = random_batch(batch_size=3, length=length, seed=seed)
    batch.mask[0, :2] = False  # one left-padded window
    for name in ("states", "actions", "prev_actions", "returns_to_go"):
        getattr(batch, name)[0, :2] = 0
    return batch


@pytest.mark.parametrize("model", ["dema", "dema-post"])
def test_hook_with_the_layers_own_alpha_is_the_plain_forward(model):
    """The tensor form of the hook: alpha @ u + D u, gated, equals the scan (float64)."""
    policy = tiny_policy(model)
    batch = _window(policy)
    layers = mamba_layers(policy)
    expected = policy(batch)

    def own_alpha(s, mask):
        return hidden_attention(s.delta, s.A, s.B, s.C, delta_bias=s.delta_bias, delta_softplus=True)

    with overrides(layers, {i: own_alpha for i in range(len(layers))}):
        got = policy(batch)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    assert all(layer.attention_override is None for layer in layers)  # removed afterwards


def test_identity_swap_is_bitwise_the_intact_model():
    policy = tiny_policy("dema", dtype=torch.float32)
    batch = _window(policy)
    batch = dataclasses.replace(batch, **{k: getattr(batch, k).float() for k in
                                          ("states", "actions", "prev_actions", "returns_to_go")})
    # the intact model as run_surgery scores it (SurgeryPolicy without a manipulation: the plain SSM
    # forward); the policy's own CPU forward takes the SSM node, equal up to float rounding only,
    # and how far the two round apart depends on the CPU's vector units (AVX2 vs AVX-512)
    intact = SurgeryPolicy(policy, None).predict_last(batch)
    torch.testing.assert_close(intact, policy.predict_last(batch), rtol=1e-5, atol=1e-6)
    for layer in range(2):
        same = SurgeryPolicy(policy, Manipulation("swap", layer, layer)).predict_last(batch)
        assert torch.equal(same, intact)


def test_swap_uses_the_other_layers_intact_attention():
    """swap 1<-0 = layer 1 with alpha_0 (from the intact pass) applied to its own u."""
    policy = tiny_policy("dema")
    batch = _window(policy)
    layers = mamba_layers(policy)
    source = record_scan_inputs(policy, batch, [0])[0]
    alpha0 = hidden_attention(source.delta, source.A, source.B, source.C, delta_bias=source.delta_bias,
                              delta_softplus=True)
    with overrides(layers, {1: lambda s, mask: alpha0}):
        expected = policy(batch)
    got = SurgeryPolicy(policy, Manipulation("swap", 1, 0))(batch)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_random_attention_keeps_the_row_sums_and_is_seeded():
    policy = tiny_policy("dema")
    batch = _window(policy)
    layers = mamba_layers(policy)
    seen = {}

    def spy(fn):
        def wrapped(s, mask):
            seen["alpha"], seen["s"], seen["mask"] = fn(s, mask), s, mask
            return seen["alpha"]
        return wrapped

    surgery = SurgeryPolicy(policy, Manipulation("random", 0), seed=3)
    with overrides(layers, {0: spy(surgery._random[0])}):
        policy(batch)
    s, mask, alpha = seen["s"], seen["mask"], seen["alpha"]
    intact = hidden_attention(s.delta, s.A, s.B, s.C, delta_bias=s.delta_bias, delta_softplus=True)
    real_rows = mask[:, None, :, None].expand_as(alpha)  # rows of padded tokens hold no real past
    torch.testing.assert_close(alpha.sum(-1)[real_rows[..., 0]], intact.sum(-1)[real_rows[..., 0]])
    assert torch.all(alpha.triu(1) == 0)  # causal
    assert torch.all(alpha[0, :, :, :2] == 0)  # never on padded tokens
    assert not torch.allclose(alpha, intact)
    again = SurgeryPolicy(policy, Manipulation("random", 0), seed=3)(batch)
    torch.testing.assert_close(again, SurgeryPolicy(policy, Manipulation("random", 0), seed=3)(batch))
    other = SurgeryPolicy(policy, Manipulation("random", 0), seed=4)(batch)
    assert not torch.equal(again, other)


def test_manipulations_change_the_actions_of_a_trained_model(tiny_dema_run):
    run, policy = load_trained(tiny_dema_run)
    batch = random_batch(batch_size=4, length=run.config.model.context_len, dtype=torch.float32)
    batch.states = torch.randn(4, run.config.model.context_len, 11)
    intact = SurgeryPolicy(policy, None).predict_last(batch)  # the plain SSM forward, as surgery scores it
    torch.testing.assert_close(intact, policy.predict_last(batch), rtol=1e-5, atol=1e-6)  # (the SSM node: rounding)
    for m in (Manipulation("zero", 0), Manipulation("zero", "all"), Manipulation("random", 1),
              Manipulation("swap", 0, 1), Manipulation("swap", "all")):
        changed = SurgeryPolicy(policy, m).predict_last(batch)
        assert (changed - intact).abs().max() > 1e-3, m
    assert torch.equal(SurgeryPolicy(policy, Manipulation("swap", 1, 1)).predict_last(batch), intact)


def test_identity_swap_scores_exactly_the_intact_score(tiny_dema_run):
    run, policy = load_trained(tiny_dema_run)
    manipulations = [Manipulation("swap", 0, 0), Manipulation("swap", 1, 1), Manipulation("zero", "all")]
    report = run_surgery(policy, run.config.model, run.stats, run.spec, manipulations, episodes=2, seeds=(0,),
                         target=3600.0, max_episode_steps=15, log=lambda *_: None)
    intact = report["intact_detail"]
    for row in report["manipulations"][:2]:
        assert row["normalized_mean"] == report["intact"]
        assert row["returns"] == intact["returns"] and row["lengths"] == intact["lengths"]
    assert report["manipulations"][2]["returns"] != intact["returns"]


def test_default_manipulations_cover_every_layer_and_kind():
    ms = default_manipulations(3)
    labels = [(m.kind, m.layer, m.with_) for m in ms]
    assert ("zero", "all", None) in labels and ("random", 2, None) in labels and ("swap", "all", None) in labels
    assert sum(1 for k, layer, w in labels if k == "swap" and layer != "all" and layer != w) == 6
    assert labels[-1] == ("swap", 0, 0)  # the identity check
    assert Manipulation("swap", "all").to_dict(3) == {"kind": "swap", "layer": "all", "with": [1, 2, 0]}


def test_surgery_command(tiny_dema_run, tmp_path, capsys):
    out = tmp_path / "surgery"
    code = main(["surgery", str(tiny_dema_run), "--episodes", "1", "--max-episode-steps", "6",
                 "--kinds", "zero,swap", "--layers", "1", "--out", str(out), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert isinstance(report["intact"], float)
    kinds = [(m["kind"], m["layer"], m.get("with")) for m in report["manipulations"]]
    assert kinds == [("zero", 1, None), ("zero", "all", None), ("swap", 1, 0), ("swap", "all", [1, 0]),
                     ("swap", 1, 1)]
    assert all("normalized_mean" in m for m in report["manipulations"])
    assert report["manipulations"][-1]["normalized_mean"] == report["intact"]
    assert (out / "surgery.png").stat().st_size > 5_000 and (out / "surgery.csv").read_text().startswith("kind,")
    (out / "surgery.png").unlink()
    assert main(["surgery", str(tiny_dema_run), "--out", str(out), "--replot"]) == 0  # from surgery.json alone
    assert (out / "surgery.png").is_file()


def test_surgery_refuses_bad_input_in_one_line(tiny_dema_run, tiny_dt_run, tiny_rnn_run, tmp_path, capsys):
    def error(*argv):
        assert main(["surgery", *map(str, argv), "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("dema surgery: error:")
        return err

    assert "no Mamba layers" in error(tiny_dt_run)
    assert "RNN-like" in error(tiny_rnn_run)
    assert "out of range" in error(tiny_dema_run, "--layers", "2")
    assert "nothing.safetensors" in error(tiny_dema_run, "--checkpoint", "nothing.safetensors")
    assert "not a trained run" in error(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "normalization.json"):
        (broken / name).write_bytes((tiny_dema_run / name).read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    assert "broken/model.safetensors" in error(broken)  # corrupt weights, named
