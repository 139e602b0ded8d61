"""Attention decay: the fits recover known curves; records from a tiny trained run are what
`dema.attention` computes; the command writes its outputs and refuses bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dema.analysis.decay import (DecayRecords, analyse, collect, compare_fits, fit_exponential, fit_power_law,
                                 periodicity, rollout_episodes, window_at)
from dema.analysis.runs import load_trained
from dema.attention import policy_hidden_attention
from dema.cli import main

K = np.arange(1, 61)


def test_exponential_fit_recovers_the_rate():
    fit = fit_exponential(K, 2.0 * np.exp(-0.15 * K))
    assert fit["rate"] == pytest.approx(0.15, rel=1e-9) and fit["amplitude"] == pytest.approx(2.0, rel=1e-9)
    assert fit["r2_log"] == pytest.approx(1.0) and fit["half_distance"] == pytest.approx(math.log(2) / 0.15)
    noisy = 2.0 * np.exp(-0.15 * K) * np.exp(np.random.default_rng(0).normal(0, 0.1, len(K)))
    both = compare_fits(K, noisy)
    assert both["exponential"]["rate"] == pytest.approx(0.15, rel=0.05)
    assert both["better"] == "exponential" and both["aic_exp_minus_power"] < 0


def test_power_law_fit_recovers_the_exponent():
    fit = fit_power_law(K, 3.0 * K ** -1.7)
    assert fit["exponent"] == pytest.approx(1.7, rel=1e-9) and fit["amplitude"] == pytest.approx(3.0, rel=1e-9)
    noisy = 3.0 * K ** -1.7 * np.exp(np.random.default_rng(1).normal(0, 0.1, len(K)))
    both = compare_fits(K, noisy)
    assert both["power_law"]["exponent"] == pytest.approx(1.7, rel=0.05)
    assert both["better"] == "power law" and both["aic_exp_minus_power"] > 0
    assert both["power_law"]["r2_log"] > both["exponential"]["r2_log"]


def test_periodicity_finds_a_period_3_pattern_on_any_trend():
    types = ["s", "a", "R"]  # distance 0, 1, 2 (mod 3)
    factors = np.array([1.0, 2.0, 0.5])  # a tokens twice, R tokens half their neighbours' mean
    k = np.arange(1, 61)
    y = 3.0 * k ** -1.2 * factors[k % 3]
    p = periodicity(k, y, types)
    assert p["period3_variance_fraction"] == pytest.approx(1.0, abs=1e-6)
    ratio = p["per_type"]["a"]["factor"] / p["per_type"]["R"]["factor"]
    assert ratio == pytest.approx(4.0, rel=0.05)  # the trend is removed; the ratio between types stays
    flat = periodicity(k, 2.0 * np.exp(-0.1 * k), types)
    assert flat["period3_variance_fraction"] < 0.01 and abs(flat["per_type"]["a"]["log10_vs_neighbours"]) < 1e-9


def _records(rows, types=("s", "a", "R")):
    return DecayRecords(np.asarray(rows, np.float32), np.zeros(len(rows), int), np.arange(len(rows)), list(types),
                        "window", {"tokens_per_step": 3})


def test_analyse_averages_decisions_and_limits_the_range_to_common_distances():
    k = np.arange(40.0)
    full = 0.5 * np.exp(-0.2 * k)
    short = full.copy()
    short[25:] = np.nan  # a decision that does not reach that far
    report = analyse(_records([[full], [full], [short]]), far=10)
    layer = report["layers"][0]
    assert report["k_max"] == 39  # reached by 2 of 3 decisions, above half
    assert layer["fit_all"]["exponential"]["rate"] == pytest.approx(0.2, rel=1e-6)
    assert layer["fit_far"]["range"] == [10, 39]


def test_records_match_the_hidden_attention_of_the_policy(tiny_dema_run):
    """A window-view record is the channel-mean |alpha| of the decision row, by distance."""
    run, policy = load_trained(tiny_dema_run)
    episodes, returns = rollout_episodes(policy, run, episodes=2, max_episode_steps=9)
    assert len(episodes) == 2 and all(1 <= ep.length <= 9 for ep in episodes) and len(returns) == 2
    records = collect(policy, episodes, "window", every=1, meta={})
    K_ = run.config.model.context_len
    t = episodes[0].length - 1
    window = window_at(episodes[0], t, K_)
    rows = policy_hidden_attention(policy, window)  # per layer (1, Di, 3K, 3K)
    p = 3 * (K_ - 1) + 2  # s_t of the last step
    for layer, alpha in enumerate(rows):
        expected = alpha[0, :, p, : p + 1].abs().mean(0).double().numpy()[::-1]
        got = records.rows[t, layer, : p + 1]
        real = np.isfinite(got)
        np.testing.assert_allclose(got[real], expected[real], rtol=1e-4, atol=1e-9)
        assert real.sum() == 3 * min(t + 1, K_) - 0  # padding has no value
    with torch.no_grad():  # the window the recorder built is the agent's: same action as recorded
        np.testing.assert_allclose(policy.predict_last(window)[0].numpy(), episodes[0].actions[0, t].numpy(), atol=1e-6)


def test_decay_command_window_and_episode_views(tiny_dema_run, tiny_rnn_run, tmp_path, capsys):
    out = tmp_path / "decay"
    assert main(["decay", str(tiny_dema_run), "--episodes", "2", "--max-episode-steps", "12", "--every", "1",
                 "--far", "3", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["view"] == "window" and report["n_layer"] == 2 and report["types_by_distance"] == ["s", "a", "R"]
    assert report["layers"][0]["fit_all"] is not None
    for name in ("decay.png", "decay.csv", "decay.json", "decay_records.npz"):
        assert (out / name).is_file(), name
    before = (out / "decay.json").read_text()
    (out / "decay.json").unlink()
    assert main(["decay", str(tiny_dema_run), "--out", str(out), "--replot", "--far", "3"]) == 0
    assert (out / "decay.json").read_text() == before  # regenerated from the records alone
    assert "layer 0:" in capsys.readouterr().out
    rnn_out = tmp_path / "rnn"
    assert main(["decay", str(tiny_rnn_run), "--episodes", "1", "--max-episode-steps", "15", "--every", "3",
                 "--out", str(rnn_out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["view"] == "episode" and report["decisions"] == 5


def test_decay_refuses_bad_input(tiny_dt_run, tiny_dema_run, tmp_path, capsys):
    assert main(["decay", str(tiny_dt_run), "--out", str(tmp_path / "x")]) == 2
    assert "no Mamba layers" in capsys.readouterr().err
    assert main(["decay", str(tiny_dema_run), "--checkpoint", "best", "--out", str(tmp_path / "x")]) == 2
    assert "best.safetensors" in capsys.readouterr().err  # the run has no best checkpoint
    assert main(["decay", str(tiny_dema_run), "--replot", "--out", str(tmp_path / "empty")]) == 2
    assert "run `dema decay" in capsys.readouterr().err
