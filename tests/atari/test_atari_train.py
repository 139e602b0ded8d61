"""dema train / dema eval on tiny collected Atari data, and acting that embeds each frame once."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dema.cli import main
from dema.data.batch import Batch
from dema.envs import env_spec
from dema.evaluation.agent import WindowAgent, make_agent
from dema.models import build_policy, model_config
from dema.models.config import ModelConfig
from dema.run import NormStats

TINY = ["--model.n-layer", "1", "--model.embed-dim", "16", "--model.d-model", "16", "--model.context-len", "4",
        "--optim.batch-size", "2", "--schedule.updates", "2", "--schedule.log-every", "1",
        "--schedule.checkpoint-every", "1", "--schedule.eval-every", "2", "--eval.train-episodes", "1",
        "--eval.episodes", "1", "--eval.max-episode-steps", "20", "--progress", "False", "--threads", "1"]


@pytest.mark.parametrize("model", ["dema", "dt", "dema-rnn"])
def test_train_then_eval_on_breakout(breakout_replay, tmp_path, capsys, model):
    extra = ["--model.d-state", "4"] if model.startswith("dema") else ["--model.n-head", "2", "--model.max-ep-len", "128"]
    argv = ["train", "--model", model, "--dataset", str(breakout_replay), "--runs-dir", str(tmp_path), *TINY, *extra]
    assert main(argv) == 0
    run_dir = tmp_path / f"Breakout_{model}_paper_s0"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["optim"]["betas"] == [0.9, 0.95] and config["optim"]["decay_weights_only"]  # the Atari preset
    assert config["data"]["reward_scale"] == 1.0  # returns-to-go unscaled
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["env"] == "ALE/Breakout-v5" and report["episodes"] == 1
    assert report["normalized_mean"] == pytest.approx(100 * (report["return_mean"] - 2) / 28)  # gamer-normalised
    assert main(["eval", str(run_dir), "--episodes", "2", "--max-episode-steps", "10", "--checkpoint", "final"]) == 0
    assert json.loads((run_dir / "eval.json").read_text())["episodes"] == 2
    capsys.readouterr()



def test_training_without_ale_py_stops_before_the_first_update(breakout_replay, tmp_path, capsys, monkeypatch):
    """A run that will evaluate in ALE checks the simulator first: without ale-py it is one line, exit 2,
    and no run directory, instead of failing at the first evaluation after minutes of updates."""
    import sys

    monkeypatch.setitem(sys.modules, "ale_py", None)  # `import ale_py` now raises ImportError
    argv = ["train", "--model", "dt", "--dataset", str(breakout_replay), "--runs-dir", str(tmp_path), *TINY,
            "--model.n-head", "2", "--model.max-ep-len", "128"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'Atari needs ale-py (it ships the ROMs): pip install -e ".[atari]"' in err[0]
    assert not (tmp_path / "Breakout_dt_paper_s0").exists()
    # training without evaluations does not need it
    assert main([*argv, "--schedule.eval-every", "0", "--eval.at-end", "False"]) == 0
    assert (tmp_path / "Breakout_dt_paper_s0" / "model.safetensors").is_file()


class CountingCNN(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.frames = inner, 0

    def forward(self, x):
        self.frames += int(np.prod(x.shape[:-3]))
        return self.inner(x)


@pytest.mark.parametrize("model", ["dema", "dt"])  # token orders aprev-r-s (DeMa's Atari) and r-s-a (DT's)
def test_acting_embeds_each_frame_once_and_equals_the_full_forward(model):
    """The agent's cached embeddings give the logits of the full forward over the frames' window."""
    spec = env_spec("pong")
    cfg = ModelConfig.from_dict({**model_config(model, "pong").to_dict(),
                                 "n_layer": 1, "embed_dim": 16, "d_model": 16, "d_state": 4, "n_head": 2,
                                 "context_len": 3, "dropout": 0.0, "max_ep_len": 64})
    torch.manual_seed(0)
    policy = build_policy(cfg, spec.state_shape, spec.act_dim, discrete=True).eval()
    policy.embed_state = CountingCNN(policy.embed_state)  # instrumentation: counts the frames through the CNN
    captured = []
    original = policy.predict_last
    policy.predict_last = lambda batch, **kw: captured.append(original(batch, **kw)) or captured[-1]
    stats = NormStats(np.zeros(1, np.float32), np.full(1, 255.0, np.float32), 1.0, False)  # frames / 255
    agent = make_agent(policy, stats, spec, cfg, 2)
    assert isinstance(agent, WindowAgent) and agent.embed_once
    agent.reset(20.0, seed=0)
    rng = np.random.default_rng(0)
    frames, actions, rewards = [], [], []
    reward = None
    for t in range(5):
        obs = rng.integers(0, 255, (2, 4, 84, 84), dtype=np.uint8)
        frames.append(obs)
        actions.append(agent.act(obs, reward))
        reward = rng.integers(0, 2, 2).astype(np.float32)
        rewards.append(reward)
    assert policy.embed_state.frames == 2 * 5  # one CNN pass per frame, not K per decision
    # the same last decision from frames, through the encoder: window of the last 3 steps
    k = 3
    states = torch.as_tensor(np.stack(frames[-k:], 1)).float() / 255.0  # (2, K, 4, 84, 84)
    prev = np.stack([np.full(2, spec.act_dim)] + actions[:-1], 1)[:, -k:]  # a_{t-1}, a_{-1} reserved
    acts = np.concatenate([prev[:, 1:], np.full((2, 1), spec.act_dim)], 1)
    rtg = 20.0 - np.concatenate([np.zeros((2, 1)), np.cumsum(np.stack(rewards[:-1], 1), 1)], 1)[:, -k:]
    batch = Batch(states=states, actions=torch.as_tensor(acts), prev_actions=torch.as_tensor(prev),
                  returns_to_go=torch.as_tensor(rtg, dtype=torch.float32)[..., None],
                  timesteps=torch.arange(2, 5).repeat(2, 1), mask=torch.ones(2, k, dtype=torch.bool))
    with torch.no_grad():
        full = original(batch)  # from the frames, through the CNN
    assert len(captured) == 5 and torch.allclose(full, captured[-1], atol=1e-5)


def test_every_model_of_the_trunk_learns_from_frames(breakout_replay):
    """DeMa (Transformer- and RNN-like), BL3D, post, DT, DC, BC ...: cross-entropy on stacked frames."""
    from dema.data.load import load_training_data
    from dema.data.trajectories import TrajectoryDataset
    from dema.models import MODELS

    spec = env_spec("breakout")
    data = TrajectoryDataset(load_training_data(str(breakout_replay)), 4, 1.0, frame_stack=4, seed=0)
    batch = data.sample(2)
    assert batch.states.shape == (2, 4, 4, 84, 84) and batch.actions.dtype == torch.int64
    assert (batch.prev_actions[batch.mask] <= spec.act_dim).all()
    for model in MODELS:
        cfg = ModelConfig.from_dict({**model_config(model, "breakout").to_dict(), "n_layer": 1, "embed_dim": 16,
                                     "d_model": 16, "d_state": 4, "n_head": 2, "context_len": 4, "max_ep_len": 4096})
        policy = build_policy(cfg, spec.state_shape, spec.act_dim, discrete=True)
        loss = policy.loss(batch)
        loss.backward()
        assert torch.isfinite(loss) and 0.5 < loss.item() < 3.0, model  # about log(4) at the start
        assert policy.embed_state.convs[0].weight.grad.abs().sum() > 0, model  # the CNN learns too
