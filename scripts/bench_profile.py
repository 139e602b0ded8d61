"""Where a training step's CPU time goes: torch-profiler self time of DeMa and DT, grouped.

    python scripts/bench_profile.py [dataset] [threads]     # defaults: hopper-medium 1

Groups: the selective scan (our Numba autograd node; with the fused SSM node, the default on the
CPU, its Numba kernels: the scan and the conv + SiLU, "scan+conv"), matmuls (mm/addmm/bmm/baddbmm),
convolutions, the AdamW update, and everything else (elementwise ops, copies, norms, softmax).
The profiler adds its own overhead per op, so the totals exceed `dema bench step`'s times; the
shares are what this is for (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import sys

import torch

from dema.bench.workloads import TrainStep, build, random_batch

MATMULS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}


def group(name: str) -> str:
    if "NumbaScan" in name:
        return "scan"
    if "FusedSSM" in name:  # the fused SSM node's own Numba kernels: the scan and the conv + SiLU
        return "scan+conv"
    if name in MATMULS:
        return "matmul"
    if "conv" in name:
        return "conv"
    if "Optimizer" in name or "foreach" in name:
        return "adamw"
    return "other"


def main(argv: list[str]) -> int:
    dataset = argv[0] if argv else "hopper-medium"
    torch.set_num_threads(int(argv[1]) if len(argv) > 1 else 1)
    for model in ("dema", "dt"):
        policy, state_dim, act_dim = build(model, dataset)
        step = TrainStep(policy, random_batch(64, policy.cfg.context_len, state_dim, act_dim))
        for _ in range(2):
            step()
        repeats = 5
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(repeats):
                step()
        totals: dict[str, float] = {}
        for event in prof.key_averages():
            key = group(event.key)
            totals[key] = totals.get(key, 0.0) + event.self_cpu_time_total / 1e3 / repeats
        total = sum(totals.values())
        shares = ", ".join(f"{k} {v:.0f} ms ({100 * v / total:.0f}%)" for k, v in sorted(totals.items(), key=lambda x: -x[1]))
        print(f"{model}: {total:.0f} ms profiled self CPU per step: {shares}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
