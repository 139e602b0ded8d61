"""`dema bench step`: the training step of Transformer-like DeMa against DT, in one process.

At the paper's presets for a MuJoCo dataset (hopper-medium: DeMa E 256, D 64, N 64, 3 layers;
DT width 128, 3 layers, 1 head), K 20, batch 64, the two training steps run alternately (so load
on a shared machine hits both alike) and the medians are compared. The issue's goal: DeMa's step
at most half of DT's.
"""

from __future__ import annotations

import time

import torch

from dema.bench.timing import machine_info, measure_interleaved
from dema.bench.workloads import TrainStep, build, random_batch
from dema.models.registry import Study, models_in
from dema.scan import scan_backend


def run_step_bench(dataset: str = "hopper-medium", batch_size: int = 64, steps: int | None = None,
                   repeats: int = 30, budget_s: float = 40.0, models=models_in(Study.HEADLINE), device: str = "cpu") -> dict:
    """`device`: where the models and batches live (cpu, cuda); the timer synchronises CUDA."""
    started = time.perf_counter()
    fns, params = {}, {}
    for model in models:
        policy, state_dim, act_dim = build(model, dataset, device=device)
        k = steps or policy.cfg.context_len
        fns[model] = TrainStep(policy, random_batch(batch_size, k, state_dim, act_dim, device=device))
        params[model] = sum(p.numel() for p in policy.parameters())
    timings = measure_interleaved(fns, repeats=repeats, warmup=2, budget_s=budget_s)
    first, second = models
    result = {
        f"{first}_ms": round(timings[first]["ms"], 2),
        f"{second}_ms": round(timings[second]["ms"], 2),
        "ratio": round(timings[first]["ms"] / timings[second]["ms"], 3),
        "cpu_ratio": round(timings[first]["cpu_ms"] / timings[second]["cpu_ms"], 3),
        "dataset": dataset,
        "batch_size": batch_size,
        "context_len": steps or "preset",
        "timings": timings,
        "parameters": params,
        "scan": scan_backend(torch.empty(0, device=device)),
        "device": str(device),
        **machine_info(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return result
