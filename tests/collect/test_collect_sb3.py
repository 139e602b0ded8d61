"""SB3 zip files read without SB3: the numpy actor matches SB3's own deterministic predict."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from dema.data.collect.policies import load_policy, load_sb3_zip
from dema.errors import DataError

sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 not installed (pip install 'dema[sac]')")


def _check(model, path, env, rng, time_feature=False):
    policy = load_sb3_zip(path)
    obs = rng.normal(size=(16, env.observation_space.shape[0])).astype(np.float32)
    want, _ = model.predict(obs, deterministic=True)
    got = policy.act(obs, deterministic=True)
    np.testing.assert_allclose(got, want, atol=1e-5)
    return policy


@pytest.mark.parametrize("algo", ["SAC", "PPO", "A2C"])
def test_sb3_zip_matches_sb3_predict(tmp_path, algo):
    import gymnasium as gym
    import torch

    torch.manual_seed(0)
    env = gym.make("Pendulum-v1")  # action bounds [-2, 2]: checks the rescaling of squashed actions
    cls = getattr(sb3, algo)
    kwargs = {"net_arch": [8, 8]}
    if algo == "PPO":
        kwargs["activation_fn"] = torch.nn.ReLU  # not PPO's default: the JSON must be read
    model = cls("MlpPolicy", env, policy_kwargs=kwargs, seed=0, device="cpu")
    path = tmp_path / f"{algo.lower()}-pendulum.zip"
    model.save(path)
    policy = _check(model, path, env, np.random.default_rng(0))
    assert policy.kind == ("squashed_gaussian" if algo == "SAC" else "gaussian")
    assert policy.activation == ("tanh" if algo == "A2C" else "relu")
    np.testing.assert_allclose(policy.act_high, [2.0])
    assert len(policy.hidden) == 2 and policy.obs_dim == 3
    # stochastic actions stay in the bounds
    acts = policy.act(np.zeros((100, 3)), rng=np.random.default_rng(1))
    assert acts.min() >= -2.0 and acts.max() <= 2.0


def test_not_an_sb3_zip_is_refused(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(DataError, match="not a Stable-Baselines3 save file"):
        load_policy(path)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="unreadable SB3 zip"):
        load_policy(broken)
