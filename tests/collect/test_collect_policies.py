"""Behaviour policies: the numpy forward pass against a hand computation, and real policies' returns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dema.data.collect.policies import MlpPolicy, load_npz, load_policy
from dema.data.collect.recipes import PACKAGED_POLICY_DIR
from dema.errors import DataError


def _write_policy(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_squashed_gaussian_matches_hand_computation(tmp_path, rng):
    S, H, A = 5, 7, 3
    W0, b0 = rng.normal(size=(H, S)), rng.normal(size=H)
    W_mu, b_mu = rng.normal(size=(A, H)), rng.normal(size=A)
    W_ls, b_ls = rng.normal(size=(A, H)) * 3, rng.normal(size=A)  # large, so the clip to [-20, 2] acts
    path = _write_policy(
        tmp_path / "sac.npz", kind="squashed_gaussian", activation="relu", n_hidden=1, W0=W0, b0=b0,
        W_mu=W_mu, b_mu=b_mu, W_logstd=W_ls, b_logstd=b_ls, act_low=-np.ones(A), act_high=np.ones(A),
        time_feature=False,
    )
    policy = load_npz(path)
    obs = rng.normal(size=(4, S))
    out_det = policy.act(obs, deterministic=True)
    out_sto = policy.act(obs, rng=np.random.default_rng(7))
    eps = np.random.default_rng(7).standard_normal((4, A))
    for n in range(4):  # one observation at a time, written out
        h = [max(0.0, sum(W0[j, i] * obs[n, i] for i in range(S)) + b0[j]) for j in range(H)]
        mu = [sum(W_mu[a, j] * h[j] for j in range(H)) + b_mu[a] for a in range(A)]
        ls = [min(2.0, max(-20.0, sum(W_ls[a, j] * h[j] for j in range(H)) + b_ls[a])) for a in range(A)]
        for a in range(A):
            assert out_det[n, a] == pytest.approx(np.tanh(mu[a]), abs=1e-12)
            assert out_sto[n, a] == pytest.approx(np.tanh(mu[a] + np.exp(ls[a]) * eps[n, a]), abs=1e-12)


def test_gaussian_with_time_feature_and_normalisation(tmp_path, rng):
    S, H, A = 4, 6, 2
    W0, b0, W1, b1 = rng.normal(size=(H, S + 1)), rng.normal(size=H), rng.normal(size=(H, H)), rng.normal(size=H)
    W_mu, b_mu, log_std = rng.normal(size=(A, H)), rng.normal(size=A), np.array([-0.5, 0.3])
    mean, var = rng.normal(size=S + 1), rng.uniform(0.5, 2.0, size=S + 1)
    low, high = np.array([-0.5, -1.0]), np.array([0.5, 1.0])
    path = _write_policy(
        tmp_path / "ppo.npz", kind="gaussian", activation="tanh", n_hidden=2, W0=W0, b0=b0, W1=W1, b1=b1,
        W_mu=W_mu, b_mu=b_mu, log_std=log_std, act_low=low, act_high=high, time_feature=True,
        obs_mean=mean, obs_var=var, clip_obs=1.5, epsilon=1e-8,
    )
    policy = load_policy(path, obs_dim=S)
    assert policy.obs_dim == S and policy.act_dim == A
    obs, t = rng.normal(size=(3, S)) * 3, np.array([0, 250, 999])
    eps = np.random.default_rng(3).standard_normal((3, A))
    got = policy.act(obs, t, np.random.default_rng(3))
    for n in range(3):
        x = np.append(obs[n], 1 - t[n] / 1000)
        x = np.clip((x - mean) / np.sqrt(var + 1e-8), -1.5, 1.5)
        h = np.tanh(W1 @ np.tanh(W0 @ x + b0) + b1)
        want = np.clip(W_mu @ h + b_mu + np.exp(log_std) * eps[n], low, high)
        np.testing.assert_allclose(got[n], want, atol=1e-12)


def test_linear_policy_has_no_bias_and_clips(tmp_path, rng):
    W = rng.normal(size=(2, 3)) * 10
    path = _write_policy(tmp_path / "ars.npz", kind="linear", activation="relu", n_hidden=0, W_mu=W,
                         act_low=-np.ones(2), act_high=np.ones(2), time_feature=False)
    obs = rng.normal(size=(5, 3))
    np.testing.assert_allclose(load_npz(path).act(obs, deterministic=True), np.clip(obs @ W.T, -1, 1))


def test_bad_policy_files_are_refused(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_policy(tmp_path / "missing.npz")
    bad = _write_policy(tmp_path / "bad.npz", kind="gaussian")
    with pytest.raises(DataError, match="lacks keys"):
        load_npz(bad)
    with pytest.raises(DataError, match="unknown policy format"):
        load_policy(tmp_path / "policy.pkl")
    with pytest.raises(DataError, match="unknown kind"):
        MlpPolicy("x", "beta", "relu", [], np.zeros((1, 1)), np.zeros(1), -np.ones(1), np.ones(1))


def test_policy_size_must_fit_the_environment():
    with pytest.raises(DataError, match="size 11"):
        load_policy(PACKAGED_POLICY_DIR / "tqc-Hopper.npz", obs_dim=17)


@pytest.mark.parametrize(
    "name, env_id, readme_return",
    [("tqc-Hopper", "Hopper-v5", 3272.0), ("ppo_old-Hopper", "Hopper-v5", 1086.0)],
)
def test_real_policy_reproduces_readme_return(name, env_id, readme_return):
    """The README's protocol (deterministic, reset seeds 0-4): the mean lands within 3% of its number."""
    import gymnasium as gym

    policy = load_policy(PACKAGED_POLICY_DIR / f"{name}.npz")
    env = gym.make(env_id)
    returns = []
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        total, t, done = 0.0, 0, False
        while not done:
            action = policy.act(obs[None], np.array([t]), deterministic=True)[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            total, t, done = total + reward, t + 1, terminated or truncated
        returns.append(total)
    env.close()
    assert abs(np.mean(returns) - readme_return) < 0.03 * readme_return, returns
