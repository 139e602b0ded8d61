"""Acting and evaluation: the agents' windows follow the batch contract, rollouts score a tiny run."""

from __future__ import annotations

import dataclasses
from importlib import metadata

import numpy as np
import pytest
import torch

from dema.data.load import load_dataset
from dema.data.trajectories import TrajectoryDataset
from dema.envs import env_spec
from dema.evaluation.agent import RecurrentAgent, TanhHead, WindowAgent
from dema.run import NormStats
from dema.evaluation.evaluate import evaluate_run
from dema.evaluation.rollout import run_episodes
from dema.models import build_policy, model_config
from dema.train.loop import train

from train_helpers import TINY_MODEL, tiny_config

FIELDS = ("states", "prev_actions", "returns_to_go", "timesteps", "mask")


class Recorder(torch.nn.Module):
    """A policy that records the windows it is asked to act on and returns zero actions."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def predict_last(self, batch):
        self.seen.append({f: getattr(batch, f).clone() for f in FIELDS})
        return torch.zeros(batch.batch_size, 3)


def _episode(dataset, data, index):
    start, length = data.episodes[index].start, data.episodes[index].length
    sl = slice(start, start + length)
    return dataset.observations[sl], dataset.actions[sl], dataset.rewards[sl], data.episodes[index].return_


@pytest.mark.parametrize("delayed", [False, True])
def test_window_agent_builds_the_training_windows(tiny_dataset, delayed):
    """Replaying a dataset episode (its own actions) through the agent gives the sampler's windows."""
    k = 5
    dataset = load_dataset(tiny_dataset)
    data = TrajectoryDataset(dataset, k, reward_scale=1000.0, delayed=delayed)
    obs, actions, rewards, return_ = _episode(dataset, data, 0)
    recorder = Recorder()
    agent = WindowAgent(recorder, NormStats(data.state_mean, data.state_std, 1000.0, delayed), 1, k, TanhHead(3))
    agent.reset(target_return=return_)
    reward = None
    for t in range(len(obs)):
        agent.act(obs[t][None], reward)
        agent.prev_action = torch.as_tensor(actions[t])[None]  # follow the dataset, not the policy
        reward = rewards[t : t + 1]
    for t, seen in enumerate(recorder.seen):
        valid = min(t + 1, k)  # real steps in the window; the rest is left padding
        expected = data.window(0, t + 1 - valid)
        for f in FIELDS:
            got, want = seen[f][0, k - valid :], getattr(expected, f)[0, :valid]
            if f == "returns_to_go" and delayed:
                want = torch.full_like(want, return_ / 1000.0)  # the delayed target never decreases
            torch.testing.assert_close(got, want.to(got.dtype), rtol=1e-5, atol=1e-5, msg=f"{f} at t={t}")
            assert not seen[f][0, : k - valid].any(), f"{f} padding at t={t} is not zero"


def test_recurrent_agent_acts_like_the_full_forward(tiny_dataset):
    """RNN-like DeMa acting step by step (O(1) per step) = its forward on the whole episode."""
    dataset = load_dataset(tiny_dataset)
    cfg = dataclasses.replace(model_config("dema-rnn", "hopper-medium"), **TINY_MODEL)
    torch.manual_seed(0)
    policy = build_policy(cfg, 11, 3).eval()
    obs, actions, rewards, return_ = _episode(dataset, TrajectoryDataset(dataset, 1), 0)
    full = TrajectoryDataset(dataset, context_len=len(obs)).window(0, 0)
    with torch.no_grad():
        expected = policy(full)[0]  # (L, A)
    data = TrajectoryDataset(dataset, 1)
    agent = RecurrentAgent(policy, NormStats(data.state_mean, data.state_std, 1000.0, False), 1, TanhHead(3))
    agent.reset(target_return=return_)
    reward = None
    for t in range(len(obs)):
        action = agent.act(obs[t][None], reward)
        torch.testing.assert_close(torch.as_tensor(action[0]), expected[t], rtol=1e-4, atol=1e-5)
        agent.prev_action = torch.as_tensor(actions[t])[None]
        reward = rewards[t : t + 1]


def test_rollouts_run_exactly_n_episodes_each_to_its_end():
    spec = env_spec("hopper")

    class Flop:  # a constant action: hopper falls at different steps in different episodes
        def __init__(self, n):
            self.n = n

        def reset(self, target_return, seed=None):
            pass

        def act(self, obs, reward=None):
            return np.full((self.n, 3), 0.8)

    result = run_episodes(Flop, spec, n=5, seed=0, target_return=0.0, max_envs=2, max_episode_steps=60)
    assert len(result.returns) == 5 and all(1 <= n <= 60 for n in result.lengths)
    again = run_episodes(Flop, spec, n=5, seed=0, target_return=0.0, max_envs=5, max_episode_steps=60)
    assert again.returns == pytest.approx(result.returns)  # episode j has seed j, whatever the rounds


def test_eval_of_a_tiny_run(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path, "dema", updates=4, eval_every=2)
    config = dataclasses.replace(config, eval=dataclasses.replace(config.eval, train_episodes=2, max_episode_steps=12))
    result = train(config, log=lambda *_: None)
    assert result.best is not None and (result.run_dir / "best.safetensors").is_file()
    report = evaluate_run(result.run_dir, episodes=3, seeds=(0, 1), targets=(3600.0, 1800.0))
    for key in ("return_mean", "return_std", "normalized_mean", "normalized_std", "episodes", "targets", "seeds",
                "checkpoint", "env", "versions", "best_checkpoint", "best_during_training"):
        assert key in report, key
    assert report["episodes"] == 6 and report["targets"] == [3600.0, 1800.0] and report["env"] == "Hopper-v5"
    first = report["per_target"][0]
    assert len(first["returns"]) == 6 and max(first["lengths"]) <= 12
    assert report["return_mean"] == pytest.approx(np.mean(first["returns"]))
    assert report["normalized_mean"] == pytest.approx(env_spec("hopper").normalize(report["return_mean"]))
    assert report["checkpoint_step"] == 4 and report["best_checkpoint"]["checkpoint"] == "best.safetensors"
    assert report["best_during_training"]["evaluations"] == 2
    assert report["versions"]["torch"] == metadata.version("torch")


@pytest.mark.parametrize("model", ["dema", "dema-bl3d", "dema-post", "dema-rnn", "dt", "dc", "bc"])
def test_every_model_trains_and_acts(tiny_dataset, tmp_path, model):
    """The one loop and the one evaluation serve every model of the trunk."""
    config = tiny_config(tiny_dataset, tmp_path, model, updates=2)
    config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, batch_size=2))
    run_dir = train(config, log=lambda *_: None).run_dir
    report = evaluate_run(run_dir, checkpoints=("final",), episodes=2, targets=(3600.0,), max_episode_steps=8)
    assert report["episodes"] == 2 and np.isfinite(report["return_mean"])
    assert max(report["per_target"][0]["lengths"]) <= 8


# dema-official feeds its padding unmasked: the fused reader hands those windows to predict_last
@pytest.mark.parametrize("model, fused", [("dema", True), ("dt", False), ("dema-official", True)])
def test_window_agent_reads_a_plain_dema_window_through_the_fused_step(model, fused):
    """The fused read is the one `dema eval` uses for Transformer-like DeMa; its actions equal
    predict_last's over a whole episode of growing (left-padded) windows."""
    from dema.models.fused_step import FusedRecurrentStep

    torch.manual_seed(0)
    cfg = dataclasses.replace(model_config(model, "hopper-medium"), **TINY_MODEL)
    policy = build_policy(cfg, state_dim=11, act_dim=3).eval()
    stats = NormStats(np.zeros(11, np.float32), np.ones(11, np.float32), 1000.0, False)
    fast, slow = (WindowAgent(policy, stats, 2, cfg.context_len, TanhHead(3)) for _ in range(2))
    fast.reset(3600.0)
    slow.reset(3600.0)
    slow._reader = policy  # the reference path
    assert isinstance(fast._reader, FusedRecurrentStep) is fused
    rng = np.random.default_rng(0)
    reward = None
    for _ in range(2 * cfg.context_len):
        obs = rng.normal(size=(2, 11)).astype(np.float32)
        np.testing.assert_allclose(fast.act(obs, reward), slow.act(obs, reward), atol=1e-5)
        reward = rng.normal(size=2).astype(np.float32)
