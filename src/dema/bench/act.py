"""`dema bench act`: the cost of one decision at batch 1, as in an evaluation episode.

- RNN-like DeMa: one step (three tokens R_t, a_{t-1}, s_t through the recurrent cache), by the path
  `dema eval` takes: the fused Numba step (dema.models.fused_step) where it covers the policy, else
  `policy.step`; `policy.step` itself is timed beside it (`dema-rnn_step_torch`).
- Transformer-like DeMa and DT: a full K-step window read (3K tokens recomputed), by the path
  `dema eval` takes: for DeMa the fused window read (the same kernel from a zero state) where it
  covers the policy, else `predict_last`, which is timed beside it (`dema_window_torch`); DT's
  `predict_last`.
The issue's goals: the recurrent step at most 0.1x DT's window, DeMa's window no slower than DT's.
"""

from __future__ import annotations

import torch

from dema.bench.timing import machine_info, measure_interleaved
from dema.bench.workloads import build, random_batch
from dema.models.fused_step import fused_step_for


def run_act_bench(dataset: str = "hopper-medium", repeats: int = 200, budget_s: float = 15.0) -> dict:
    fns, context = {}, {}
    for model in ("dema", "dt"):
        policy, state_dim, act_dim = build(model, dataset)
        policy.eval()
        k = policy.cfg.context_len
        window = random_batch(1, k, state_dim, act_dim)
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
    return result
