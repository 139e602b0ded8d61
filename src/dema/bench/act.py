"""`dema bench act`: the cost of one decision at batch 1, as in an evaluation episode.

- RNN-like DeMa: one step (three tokens R_t, a_{t-1}, s_t through the recurrent cache), by the path
  `dema eval` takes: the fused Numba step (dema.models.fused_step) where it covers the policy, else
  `policy.step`; `policy.step` itself is timed beside it (`dema-rnn_step_torch`).
- Transformer-like DeMa and DT: a full K-step window read (3K tokens recomputed), by the path
  `dema eval` takes: for DeMa the fused window read (the same kernel from a zero state) where it
  covers the policy, else `predict_last`, which is timed beside it (`dema_window_torch`); DT's
  `predict_last`.
- The same three decisions exported (`dema export`: RNN-like DeMa's step, DeMa's and DT's K-step
  windows) and run by ONNX Runtime on one thread, inputs and outputs bound once (IO binding: the call
  a deployment makes, without NumPy conversions), beside them (`*_onnx`); left out, with the reason
  in `onnx_skipped`, when onnx or onnxruntime is not installed (the `export` extra).
The issue's goals: the recurrent step at most 0.1x DT's window, DeMa's window no slower than DT's;
issue 27's: the exported recurrent step faster than the fused step, ideally under 50 microseconds.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from dema.bench.timing import machine_info, measure_interleaved
from dema.bench.workloads import build, random_batch
from dema.models.fused_step import fused_step_for


def run_act_bench(dataset: str = "hopper-medium", repeats: int = 200, budget_s: float = 15.0) -> dict:
    fns, context, exported = {}, {}, {}
    onnx_skipped = _onnx_missing()
    for model in ("dema", "dt"):
        policy, state_dim, act_dim = build(model, dataset)
        policy.eval()
        k = policy.cfg.context_len
        window = random_batch(1, k, state_dim, act_dim)
        if not onnx_skipped:
            fns[f"{model}_window_onnx"], exported[model] = _onnx_decision(policy, window=window)
        torch_window = lambda policy=policy, window=window: policy.predict_last(window)  # noqa: E731
        fns[f"{model}_window"] = torch_window
        fused_window = fused_step_for(policy) if model == "dema" else None
        if model == "dema":
            fns["dema_window_torch"] = torch_window
            if fused_window is not None:  # what `dema eval` runs (dema.evaluation.agent.WindowAgent)
                fns["dema_window"] = lambda fused=fused_window, window=window: fused.predict_last(window)
            window_path = "fused" if fused_window is not None else "torch"
        context[model] = k
    policy, state_dim, act_dim = build("dema-rnn", dataset)
    policy.eval()
    fused = fused_step_for(policy)
    cache = [policy.init_cache(1, "cpu")]
    fused_cache = [fused.init_cache(1)] if fused is not None else None
    state, prev_action = torch.randn(1, state_dim), torch.zeros(1, act_dim)
    rtg, t = torch.full((1, 1), 3.6), torch.zeros(1, dtype=torch.long)

    @torch.no_grad()
    def torch_step():
        _, cache[0] = policy.step(state, prev_action, rtg, t, cache[0])

    def fused_step():
        _, fused_cache[0] = fused.step(state, prev_action, rtg, t, fused_cache[0])

    fns["dema-rnn_step"] = fused_step if fused is not None else torch_step  # what `dema eval` runs
    fns["dema-rnn_step_torch"] = torch_step
    if not onnx_skipped:
        fns["dema-rnn_step_onnx"], exported["dema-rnn"] = _onnx_decision(policy, state=state.numpy())
    timings = measure_interleaved(fns, repeats=repeats, warmup=5, budget_s=budget_s)
    ms = {name: round(t["ms"], 4) for name, t in timings.items()}
    result = {
        "ms": ms,
        "rnn_step_over_dt_window": round(ms["dema-rnn_step"] / ms["dt_window"], 3),
        "dema_window_over_dt_window": round(ms["dema_window"] / ms["dt_window"], 3),
        "dema_window_path": window_path,
        "dema_torch_window_over_dt_window": round(ms["dema_window_torch"] / ms["dt_window"], 3),
        "rnn_step_path": "fused" if fused is not None else "torch",
        "rnn_torch_step_over_dt_window": round(ms["dema-rnn_step_torch"] / ms["dt_window"], 3),
        "context_len": context,
        "timings": timings,
        **machine_info(),
    }
    if window_path == "fused":  # kept for readers of the earlier key
        result["dema_fused_window_over_dt_window"] = result["dema_window_over_dt_window"]
    if onnx_skipped:
        result["onnx_skipped"] = onnx_skipped
    else:
        import onnxruntime

        result.update({
            "onnx_rnn_step_over_rnn_step": round(ms["dema-rnn_step_onnx"] / ms["dema-rnn_step"], 3),
            "onnx_rnn_step_over_dt_window": round(ms["dema-rnn_step_onnx"] / ms["dt_window"], 3),
            "onnx_rnn_step_us": round(1000 * ms["dema-rnn_step_onnx"], 1),
            "onnx_exported": exported, "onnxruntime": onnxruntime.__version__,
        })
    return result


def _onnx_missing() -> str | None:
    """Why the exported decisions cannot be timed here (None: they can)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install -e \".[export]\")"
    return None


def _onnx_decision(policy, window=None, state=None):
    """(one decision of `policy` exported and run by ONNX Runtime on one thread, with its inputs and
    outputs bound once; {"nodes", "export_seconds"}). The window's (or the step's) states are fed
    as raw observations to a graph whose normalisation is the identity, so the ONNX decision reads
    the same numbers as the PyTorch one."""
    import onnx
    import onnxruntime as ort

    from dema.export.onnx import onnx_model

    recurrent = window is None
    size = policy.state_dim
    started = time.perf_counter()
    model, signature = onnx_model(policy, np.zeros(size, np.float32), np.ones(size, np.float32), recurrent,
                                  policy.cfg.context_len)
    seconds = time.perf_counter() - started
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    if recurrent:
        feed = {"obs": state, "prev_action": np.zeros((1, policy.act_dim), np.float32),
                "return_to_go": np.full((1, 1), 3.6, np.float32), "timestep": np.zeros(1, np.int64),
                **{item["input"]: np.zeros((1, *item["shape"][1:]), np.float32) for item in signature["state"]}}
    else:
        feed = {"obs": window.states.numpy(), "prev_actions": window.prev_actions.numpy(),
                "returns_to_go": window.returns_to_go.numpy(), "timesteps": window.timesteps.numpy(),
                "mask": window.mask.numpy()}
    binding = session.io_binding()
    inputs = {value.name for value in session.get_inputs()}
    bound = [ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value)) for name, value in feed.items()
             if name in inputs]
    for name, value in zip([name for name in feed if name in inputs], bound):
        binding.bind_ortvalue_input(name, value)
    for item in signature["outputs"]:
        out = ort.OrtValue.ortvalue_from_numpy(np.zeros((1, *item["shape"][1:]), np.float32))
        bound.append(out)
        binding.bind_ortvalue_output(item["name"], out)
    run = lambda: session.run_with_iobinding(binding)  # noqa: E731 (bound keeps the buffers alive)
    run.bound = bound
    nodes = len(onnx.load_from_string(model).graph.node)
    return run, {"nodes": nodes, "export_seconds": round(seconds, 1)}
