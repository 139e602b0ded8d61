"""A policy as an ONNX model: the graph (`dema.export.graphs`) traced by torch.onnx's exporter, and the
description a deployment needs beside it.

    model, signature = onnx_model(policy, mean, std, recurrent=True, context_len=20)  # bytes, inputs and outputs
    description = describe(run, "final", step, signature, model)                       # the JSON beside it
    write_export(path, model, description)                        # path and path.with_suffix(".json")

The exporter is torch.onnx's TorchScript one (tracing), with the trunk's RMSNorm written as the ops
ONNX Runtime fuses back into one norm. The torch.export-based one (`dynamo=True`, the default from
torch 2.9) gave graphs of the same speed through ONNX Runtime but took 20-45 s to export the hopper
preset's recurrent step and 98 s for its K 20 DeMa window here, against 0.3-4 s, and
torch.onnx.export takes `dynamo=True` only from torch 2.5 (dema supports 2.4; docs/PERFORMANCE.md,
"Exported decisions").
The batch axis is dynamic (one environment or fifty); every other axis is fixed by the model.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import inspect
import io
import json
import warnings
from pathlib import Path

import torch

from dema.errors import ConfigError
from dema.export.graphs import RecurrentStep, Window, unsupported_reason
from dema.files import atomic_write
from dema.provenance import package_versions

OPSET = 18
FORMATS = ("onnx",)


def require_onnx() -> None:
    """ConfigError naming the extra when onnx (what the exporter writes with) is missing."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ConfigError('exporting to ONNX needs the onnx package: pip install -e ".[export]"') from None


def onnx_model(policy, state_mean, state_std, recurrent: bool, context_len: int) -> tuple[bytes, dict]:
    """(the serialised ONNX model, its signature: kind, inputs, outputs, state) of the decision `dema
    eval` makes with `policy` on raw observations normalised by mean and std (float32, CPU)."""
    require_onnx()
    reason = unsupported_reason(policy, recurrent)
    if reason:
        raise ConfigError(f"this policy cannot be exported: {reason}")
    policy = copy.deepcopy(policy).float().cpu().eval()  # the caller's policy stays as it is
    graph = (RecurrentStep if recurrent else Window)(policy, state_mean, state_std).eval()
    inputs, signature = _example_inputs(graph, policy, recurrent, context_len)
    names = [item["name"] for item in signature["inputs"]]
    outputs = [item["name"] for item in signature["outputs"]]
    _register_rms_norm()
    buffer = io.BytesIO()
    with _quiet(), torch.no_grad():
        torch.onnx.export(graph, inputs, buffer, opset_version=OPSET, input_names=names, output_names=outputs,
                          dynamic_axes={name: {0: "batch"} for name in names + outputs}, **_torchscript())
    model = buffer.getvalue()
    kept = _input_names(model)
    signature["inputs"] = [item for item in signature["inputs"] if item["name"] in kept]  # unused ones are dropped
    return model, signature


def _torchscript() -> dict:
    """The keyword that picks the TorchScript exporter where torch has the choice (2.5 and later)."""
    return {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}


def _input_names(model: bytes) -> set[str]:
    import onnx

    return {value.name for value in onnx.load_from_string(model).graph.input}


@functools.cache
def _register_rms_norm() -> None:
    """aten::rms_norm (nn.RMSNorm, DeMa's norms) has no translation in the TorchScript exporter: write it as
    x / sqrt(mean(pow(x, 2)) + eps) * weight, the pattern ONNX Runtime fuses into one SimplifiedLayerNormalization."""
    from torch.onnx import register_custom_op_symbolic, symbolic_helper

    def rms_norm(g, x, normalized_shape, weight, eps):
        dims = len(symbolic_helper._get_const(normalized_shape, "is", "normalized_shape"))
        eps = symbolic_helper._maybe_get_const(eps, "f")
        eps = torch.finfo(torch.float32).eps if eps is None or symbolic_helper._is_value(eps) else float(eps)
        axes = g.op("Constant", value_t=torch.arange(-dims, 0, dtype=torch.long))
        two = g.op("Constant", value_t=torch.tensor(2.0))
        mean_square = g.op("ReduceMean", g.op("Pow", x, two), axes, keepdims_i=1)
        y = g.op("Div", x, g.op("Sqrt", g.op("Add", mean_square, g.op("Constant", value_t=torch.tensor(eps)))))
        return y if symbolic_helper._is_none(weight) else g.op("Mul", y, weight)

    register_custom_op_symbolic("aten::rms_norm", rms_norm, OPSET)


def _example_inputs(graph, policy, recurrent: bool, context_len: int) -> tuple[tuple, dict]:
    """Inputs of batch 2 (an exporter specialises a batch of 1) and the signature they follow."""
    n, a = 2, policy.act_dim
    s = list(policy.state_dim) if isinstance(policy.state_dim, tuple) else [policy.state_dim]  # (S,) or (C, H, W)
    discrete = policy.discrete

    def spec(name, shape, dtype, what):
        return {"name": name, "shape": ["batch", *shape], "dtype": dtype, "what": what}

    rtg = "return still to collect divided by reward_scale, as in training (R_t, reward of step t included)"
    if recurrent:
        state = graph.state_shapes()
        if discrete:  # the reserved index a_dim stands for a_{-1}
            prev = torch.full((n,), a, dtype=torch.long)
            prev_spec = spec("prev_action", [], "int64", f"the index of a_{{t-1}}; {a} (no action) at t = 0")
            out_spec = spec("logits", [a], "float32", "the logits of a_t: sample a_t from their softmax")
        else:
            prev = torch.zeros(n, a)
            prev_spec = spec("prev_action", [a], "float32", "the action a_{t-1} taken before it; zeros at t = 0")
            out_spec = spec("action", [a], "float32", "the action a_t, in [-1, 1]")
        inputs = (torch.zeros(n, *s), prev, torch.ones(n, 1), torch.zeros(n, dtype=torch.long),
                  *(torch.zeros(n, *shape) for _, shape in state))
        obs_what = ("the raw stacked frames s_t, 0-255 (scaled inside the graph)" if len(s) == 3 else
                    "the raw observation s_t (normalised inside the graph)")
        signature = {"kind": "recurrent-step", "discrete": discrete, "inputs": [
            spec("obs", s, "float32", obs_what), prev_spec,
            spec("return_to_go", [1], "float32", rtg),
            spec("timestep", [], "int64", "t, the step's index in the episode from 0"),
            *(spec(name, shape, "float32", _state_meaning(name)) for name, shape in state)],
            "outputs": [out_spec,
                        *(spec(f"next_{name}", shape, "float32", f"{name} after this step")
                          for name, shape in state)],
            "state": [{"input": name, "output": f"next_{name}", "shape": ["batch", *shape], "initial": "zeros",
                       "what": _state_meaning(name)} for name, shape in state]}
    else:
        k = context_len
        inputs = (torch.zeros(n, k, *s), torch.zeros(n, k, a), torch.ones(n, k, 1),
                  torch.zeros(n, k, dtype=torch.long), torch.ones(n, k, dtype=torch.bool))
        signature = {"kind": "window", "discrete": False, "context_len": k, "inputs": [
            spec("obs", [k, *s], "float32", "raw observations of the last K steps, newest last (left-padded)"),
            spec("prev_actions", [k, a], "float32", "a_{t-1} of each step (zeros for t = 0)"),
            spec("returns_to_go", [k, 1], "float32", f"{rtg}, per step"),
            spec("timesteps", [k], "int64", "each step's index in the episode"),
            spec("mask", [k], "bool", "True at real steps, False at the left padding of an episode's first K-1 steps")],
            "outputs": [spec("action", [a], "float32", "the action a_t of the newest step, in [-1, 1]")],
            "state": []}
    return inputs, signature


def _state_meaning(name: str) -> str:
    kind, layer = name.split(".")
    if kind == "conv_state":
        return f"layer {layer}: the last W-1 inputs of its causal convolution, oldest first"
    return f"layer {layer}: the selective scan's state h (channels x state size)"


@contextlib.contextmanager
def _quiet():
    """The exporter warns that tracing fixes shapes (they are fixed: K and the widths) and that it is the
    older of torch's two exporters (see the module docstring): not the user's business."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def describe(run, checkpoint: str, checkpoint_step, signature: dict, model: bytes) -> dict:
    """The JSON beside the model: where it comes from, how to act with it, its inputs, outputs and state."""
    config = run.config
    return {
        "format": "onnx", "opset": OPSET, "sha256": hashlib.sha256(model).hexdigest(),
        "run": str(run.path), "checkpoint": checkpoint, "checkpoint_step": checkpoint_step,
        "model": config.model_name, "dataset": config.data.dataset, "env": run.spec.gym_id,
        "targets": list(config.eval.targets or run.spec.return_targets),
        "reward_scale": run.stats.reward_scale, "delayed": run.stats.delayed,
        "max_episode_steps": run.spec.max_episode_steps,
        "acting": ("per episode: return_to_go starts at target / reward_scale and drops by reward / reward_scale "
                   "after each step (it stays at the target when delayed is true); "
                   + (f"prev_action is the reserved index {signature['outputs'][0]['shape'][-1]} at t = 0, and a_t "
                      "is sampled from the softmax of the logits" if signature["discrete"] else
                      "prev_action is zeros at t = 0")
                   + ("; the state starts at zeros and each step's next_* outputs are the next step's inputs"
                      if signature["kind"] == "recurrent-step" else
                      "; the window holds the last K steps, newest last, left-padded with mask False")),
        **signature,
        "versions": package_versions("dema", "torch", "onnx", "onnxruntime"),
    }


def write_export(path: Path, model: bytes, description: dict) -> tuple[Path, Path]:
    """The model at `path` and its description at path.with_suffix(".json"), each written atomically."""
    path = Path(path)
    meta = path.with_suffix(".json")
    atomic_write(path, lambda tmp: tmp.write_bytes(model))
    atomic_write(meta, lambda tmp: tmp.write_text(json.dumps(description, indent=2) + "\n"))
    return path, meta
