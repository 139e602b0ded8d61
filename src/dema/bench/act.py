"""`dema bench act`: the cost of one decision at batch 1, as in an evaluation episode.

- RNN-like DeMa: one `policy.step` (three tokens R_t, a_{t-1}, s_t through the recurrent cache).
- Transformer-like DeMa and DT: `predict_last` on a full K-step window (3K tokens recomputed).
The issue's goals: the recurrent step at most 0.3x DT's window, DeMa's window no slower than DT's.
"""

from __future__ import annotations

import torch

from dema.bench.timing import machine_info, measure_interleaved
from dema.bench.workloads import build, random_batch


def run_act_bench(dataset: str = "hopper-medium", repeats: int = 200, budget_s: float = 15.0) -> dict:
    fns, context = {}, {}
    for model in ("dema", "dt"):
        policy, state_dim, act_dim = build(model, dataset)
        policy.eval()
        k = policy.cfg.context_len
        window = random_batch(1, k, state_dim, act_dim)
        fns[f"{model}_window"] = lambda policy=policy, window=window: policy.predict_last(window)
        context[model] = k
    policy, state_dim, act_dim = build("dema-rnn", dataset)
    policy.eval()
    cache = [policy.init_cache(1, "cpu")]
    state, prev_action = torch.randn(1, state_dim), torch.zeros(1, act_dim)
    rtg, t = torch.full((1, 1), 3.6), torch.zeros(1, dtype=torch.long)

    @torch.no_grad()
    def rnn_step():
        _, cache[0] = policy.step(state, prev_action, rtg, t, cache[0])

    fns["dema-rnn_step"] = rnn_step
    timings = measure_interleaved(fns, repeats=repeats, warmup=5, budget_s=budget_s)
    ms = {name: round(t["ms"], 3) for name, t in timings.items()}
    return {
        "ms": ms,
        "rnn_step_over_dt_window": round(ms["dema-rnn_step"] / ms["dt_window"], 3),
        "dema_window_over_dt_window": round(ms["dema_window"] / ms["dt_window"], 3),
        "context_len": context,
        "timings": timings,
        **machine_info(),
    }
