"""`dema export` and `dema eval --runtime onnx` on runs trained by the training loop (MuJoCo Hopper).

The exported model acts through ONNX Runtime with the same actions as the PyTorch agent `dema eval`
uses (to 1e-5 at every step of whole episodes, the two agents in lockstep on identically seeded
environments), and `dema eval --runtime onnx` scores the same episodes with the same returns.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dema.cli import main
from dema.evaluation.agent import make_agent
from dema.evaluation.evaluate import load_policy, load_run
from dema.evaluation.onnx_runtime import load_exported
from dema.evaluation.simulators import make_vector_env


def dema(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def lockstep(torch_agent, onnx_agent, spec, seed: int, target: float) -> tuple[float, list, list, int]:
    """Both agents play the same episodes (2 environments, seeds seed and seed + 1) to their ends:
    (largest action difference at any step, returns of each agent, steps)."""
    envs = [make_vector_env(spec, 2) for _ in range(2)]
    obs = [e.reset(seed=seed)[0] for e in envs]
    for agent in (torch_agent, onnx_agent):
        agent.reset(target, seed=seed)
    returns, active, rewards = np.zeros((2, 2)), np.ones((2, 2), bool), [None, None]
    worst, steps = 0.0, 0
    while active.any():
        actions = [agent.act(o, r) for agent, o, r in zip((torch_agent, onnx_agent), obs, rewards)]
        worst = max(worst, float(np.abs(actions[0] - actions[1])[active[0]].max(initial=0.0)))
        for i, env in enumerate(envs):
            obs[i], rewards[i], terminated, truncated, _ = env.step(np.clip(actions[i], -1, 1))
            returns[i] += np.where(active[i], rewards[i], 0.0)
            active[i] &= ~(terminated | truncated)
        steps += 1
    for env in envs:
        env.close()
    return worst, returns[0].tolist(), returns[1].tolist(), steps


@pytest.mark.parametrize("model", ["dema-rnn", "dema", "dt"])
def test_exported_model_acts_as_the_pytorch_agent_over_whole_episodes(trained_runs, capsys, model):
    run_dir = trained_runs[model]
    code, out, err = dema(capsys, "export", run_dir, "--out", run_dir / "exported" / "policy.onnx")
    assert code == 0, err
    assert "checked: ONNX Runtime's actions equal the PyTorch policy's" in out
    description = json.loads((run_dir / "exported" / "policy.json").read_text())
    run = load_run(run_dir)
    assert description["env"] == "Hopper-v5" and description["targets"] == [3600.0, 1800.0]
    assert description["reward_scale"] == 1000.0 and description["model"] == model
    assert description["kind"] == ("recurrent-step" if model == "dema-rnn" else "window")

    policy = load_policy(run, run_dir / "model.safetensors").eval()
    torch_agent = make_agent(policy, run.stats, run.spec, run.config.model, 2)
    onnx_agent = load_exported(run_dir / "exported" / "policy.onnx", num_envs=2)
    worst, torch_returns, onnx_returns, steps = lockstep(torch_agent, onnx_agent, run.spec, 7, 3600.0)
    assert steps > 10
    assert worst < 1e-5, worst
    np.testing.assert_allclose(onnx_returns, torch_returns, rtol=1e-5)


def test_the_recurrent_state_layout_is_the_models(trained_runs, capsys):
    import onnxruntime as ort

    run_dir = trained_runs["dema-rnn"]
    assert dema(capsys, "export", run_dir)[0] == 0  # the default place: RUN/policy.onnx, RUN/policy.json
    description = json.loads((run_dir / "policy.json").read_text())
    cfg = load_run(run_dir).config.model
    session = ort.InferenceSession(str(run_dir / "policy.onnx"), providers=["CPUExecutionProvider"])
    inputs = {value.name: value.shape for value in session.get_inputs()}
    outputs = {value.name: value.shape for value in session.get_outputs()}
    assert len(description["state"]) == 2 * cfg.n_layer
    for item in description["state"]:
        assert inputs[item["input"]] == outputs[item["output"]] == item["shape"]
    assert description["state"][0]["shape"] == ["batch", cfg.d_conv - 1, cfg.d_inner]
    assert description["state"][1]["shape"] == ["batch", cfg.d_inner, cfg.d_state]
    assert [i["name"] for i in description["inputs"]] == list(inputs)  # the JSON lists what the graph takes
    assert description["checkpoint"] == "final" and description["checkpoint_step"] == 40


@pytest.mark.parametrize("model", ["dema-rnn", "dema"])
def test_eval_through_onnx_runtime_gives_the_same_returns(trained_runs, capsys, model):
    run_dir = trained_runs[model]
    reports = {}
    for runtime in ("torch", "onnx"):
        code, out, err = dema(capsys, "eval", run_dir, "--runtime", runtime, "--episodes", "3", "--checkpoint", "final",
                              "--json")
        assert code == 0, err
        reports[runtime] = json.loads(out)
    assert reports["onnx"]["runtime"] == "onnx" and reports["torch"]["runtime"] == "torch"
    for torch_target, onnx_target in zip(reports["torch"]["per_target"], reports["onnx"]["per_target"]):
        assert onnx_target["lengths"] == torch_target["lengths"]
        np.testing.assert_allclose(onnx_target["returns"], torch_target["returns"], rtol=1e-5)
