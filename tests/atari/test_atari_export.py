"""Issue 27 on Atari: RNN-like DeMa's step exports with its CNN (frames in, logits and the state out)
and acts through ONNX Runtime as the PyTorch agent does (the same logits to 1e-5, so the same
sampled actions and returns); a window over frames is refused in one line, exit 2, the run
directory unchanged (it would re-read K frames through the CNN at every decision)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from dema.cli import main

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TINY = ["--model.n-layer", "1", "--model.embed-dim", "16", "--model.d-model", "16", "--model.context-len", "4",
        "--optim.batch-size", "4", "--optim.warmup-steps", "1", "--schedule.updates", "3",
        "--schedule.log-every", "1", "--schedule.checkpoint-every", "3", "--schedule.eval-every", "0",
        "--eval.at-end", "False", "--progress", "False", "--threads", "1"]


def _train(replay, runs, model: str, *extra):
    assert main(["train", "--model", model, "--dataset", str(replay), "--runs-dir", str(runs), *TINY, *extra]) == 0
    return runs / f"Breakout_{model}_paper_s0"


def _files(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file() and p.name != ".lock"}


def test_rnn_like_dema_on_frames_acts_through_onnx_runtime_as_in_pytorch(breakout_replay, tmp_path, capsys):
    import torch

    from dema.evaluation.agent import make_agent
    from dema.evaluation.evaluate import load_policy, load_run
    from dema.evaluation.onnx_runtime import load_exported
    from dema.evaluation.simulators import make_vector_env

    run_dir = _train(breakout_replay, tmp_path, "dema-rnn", "--model.d-state", "4")
    assert main(["export", str(run_dir)]) == 0
    description = json.loads((run_dir / "policy.json").read_text())
    assert description["discrete"] and description["outputs"][0]["name"] == "logits"
    assert description["inputs"][0]["shape"] == ["batch", 4, 84, 84]

    run = load_run(run_dir)
    policy = load_policy(run, run_dir / "model.safetensors").eval()
    agents = [make_agent(policy, run.stats, run.spec, run.config.model, 2), load_exported(run_dir / "policy.onnx", 2)]
    envs = [make_vector_env(run.spec, 2, max_episode_steps=40) for _ in agents]
    obs = [env.reset(seed=3)[0] for env in envs]
    for agent in agents:
        agent.reset(2.0, seed=3)
    rewards, returns, steps = [None, None], np.zeros((2, 2)), 0
    active = np.ones(2, bool)
    with torch.no_grad():
        while active.any():
            actions = [agent.act(o, r) for agent, o, r in zip(agents, obs, rewards)]
            assert np.array_equal(actions[0][active], actions[1][active]), steps  # the same draws from the same logits
            for i, env in enumerate(envs):
                obs[i], rewards[i], terminated, truncated, _ = env.step(actions[i].astype(np.int64))
                returns[i] += np.where(active, rewards[i], 0.0)
                if i == 1:
                    active &= ~(terminated | truncated)
            steps += 1
    for env in envs:
        env.close()
    assert steps >= 30 and np.array_equal(returns[0], returns[1])

    reports = {}
    for runtime in ("torch", "onnx"):
        capsys.readouterr()
        assert main(["eval", str(run_dir), "--runtime", runtime, "--episodes", "2", "--max-episode-steps", "25",
                     "--checkpoint", "final", "--json"]) == 0
        reports[runtime] = json.loads(capsys.readouterr().out)
    assert reports["onnx"]["per_target"][0]["returns"] == reports["torch"]["per_target"][0]["returns"]


def test_a_window_over_frames_is_refused(breakout_replay, tmp_path, capsys):
    run_dir = _train(breakout_replay, tmp_path, "dt", "--model.n-head", "2", "--model.max-ep-len", "128")
    before = _files(run_dir)
    for command, words in ((["export", str(run_dir)], "cannot be exported: it acts on frames"),
                           (["eval", str(run_dir), "--runtime", "onnx"], "covers RNN-like DeMa (dema-rnn) only")):
        capsys.readouterr()
        assert main(command) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if ": error: " in line]
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in err, err
    assert _files(run_dir) == before
