"""`dema bench profile`: where a training step's CPU time goes, torch-profiler self time of DeMa and DT, grouped.

Groups: the selective scan (our Numba autograd node; with the SSM node, the default on the
CPU, its Numba kernels: the scan and the conv + SiLU, "scan+conv"), matmuls (mm/addmm/bmm/baddbmm),
convolutions, the AdamW update, and everything else (elementwise ops, copies, norms, softmax).
The profiler adds its own overhead per op, so the totals exceed `dema bench step`'s times; the
shares are what this is for (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import torch

from dema.bench.workloads import TrainStep, build, random_batch
from dema.models.registry import Study, models_in

MATMULS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
MODELS = models_in(Study.HEADLINE)  # DeMa and DT (the model registry)
REPEATS = 5  # profiled steps per model, after 2 unprofiled ones


def group(name: str) -> str:
    """The group of a profiler event's name."""
    if "NumbaScan" in name:
        return "scan"
    if "SSMNode" in name:  # the SSM node's own Numba kernels: the scan and the conv + SiLU
        return "scan+conv"
    if name in MATMULS:
        return "matmul"
    if "conv" in name:
        return "conv"
    if "Optimizer" in name or "foreach" in name:
        return "adamw"
    return "other"


def profile_step(model: str, dataset: str, batch: int = 64) -> dict[str, float]:
    """Milliseconds of self CPU time per training step, by group."""
    policy, state_dim, act_dim = build(model, dataset)
    step = TrainStep(policy, random_batch(batch, policy.cfg.context_len, state_dim, act_dim))
    for _ in range(2):
        step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(REPEATS):
            step()
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        key = group(event.key)
        totals[key] = totals.get(key, 0.0) + event.self_cpu_time_total / 1e3 / REPEATS
    return totals


def profile_line(model: str, totals: dict[str, float]) -> str:
    """`dema: 165 ms profiled self CPU per step: scan+conv 80 ms (48%), ...`, largest group first."""
    total = sum(totals.values())
    shares = ", ".join(f"{k} {v:.0f} ms ({100 * v / total:.0f}%)" for k, v in sorted(totals.items(), key=lambda x: -x[1]))
    return f"{model}: {total:.0f} ms profiled self CPU per step: {shares}"
