"""`dema bench cost`: the paper's compute-cost study (its Figure 2 and Table 7), measured here.

Against sequence length (environment steps; 3 tokens per step), at a fixed batch:
- forward: the time to produce actions for one sequence. RNN-like DeMa acts step by step with its
  recurrent cache (L `step` calls: the cost of acting through an L-step episode prefix); the
  Transformer-like models (DeMa, DT, DC) run one forward over an L-step window.
- train step: forward + backward + AdamW on a batch of L-step sequences (RNN-like DeMa trains on
  whole trajectories, so its network and cost per sequence are Transformer-like DeMa's).
- peak memory of the training step (see timing.py for how it is measured).
Plus parameter counts and multiply-accumulates (MACs) of one forward of a K-step window at batch 1
for the paper presets: matmuls and convolutions counted by torch's FlopCounterMode, the selective
scan counted analytically (3 MACs per (Di, L, N) element: a*h, (delta u)*B, C.h; the exp not).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from dema.bench.timing import machine_info, measure_interleaved, peak_memory_mb
from dema.bench.workloads import TrainStep, build, random_batch
from dema.models import BlockKind

COST_MODELS = ("dema-rnn", "dema", "dt", "dc")
PRESET_MODELS = ("dema", "dema-post", "dema-bl3d", "dt", "dc")
PRESET_DATASETS = ("hopper-medium", "halfcheetah-medium", "hopper-medium-expert", "atari")


def scan_macs(policy, tokens: int, batch: int = 1) -> int:
    """MACs of the selective scans of a policy over `tokens` tokens (not seen by FlopCounterMode)."""
    cfg = policy.cfg
    if cfg.block is BlockKind.MAMBA_PRE_UP:
        width = cfg.d_inner
    elif cfg.block is BlockKind.MAMBA_POST_UP:
        width = cfg.d_model
    else:
        return 0
    return 3 * batch * width * tokens * cfg.d_state * cfg.n_layer


def forward_macs(policy, state_dim, act_dim, steps: int) -> int:
    tokens = steps * (3 if policy.cfg.layout.value == "b3ld" else 1)
    batch = random_batch(1, steps, state_dim, act_dim) if isinstance(state_dim, int) else _frame_batch(
        steps, state_dim, act_dim)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        policy.eval()(batch)
    return counter.get_total_flops() // 2 + scan_macs(policy, tokens)


def _frame_batch(steps, frame_shape, n_actions):
    from dema.data.batch import Batch

    return Batch(states=torch.rand(1, steps, *frame_shape), actions=torch.zeros(1, steps, dtype=torch.long),
                 prev_actions=torch.zeros(1, steps, dtype=torch.long), returns_to_go=torch.ones(1, steps, 1),
                 timesteps=torch.arange(steps)[None], mask=torch.ones(1, steps, dtype=torch.bool))


def preset_table() -> list[dict]:
    """Parameters and MACs per forward (one K-step window, batch 1) of the paper presets."""
    from dema.models import build_policy, model_config

    rows = []
    for dataset in PRESET_DATASETS:
        for model in PRESET_MODELS:
            cfg = model_config(model, dataset)
            if dataset == "atari":  # Breakout: 4 stacked 84x84 frames, 4 actions
                state_dim, act_dim = (4, 84, 84), 4
                policy = build_policy(cfg, state_dim, act_dim, discrete=True)
            else:
                policy, state_dim, act_dim = build(model, dataset)
            rows.append({
                "dataset": dataset, "model": model, "context_len": cfg.context_len,
                "parameters": sum(p.numel() for p in policy.parameters()),
                "macs": forward_macs(policy, state_dim, act_dim, cfg.context_len),
            })
    return rows


def cost_curves(lengths, batch: int, budget_s: float, models=COST_MODELS, log=print) -> list[dict]:
    """Per length, the models are timed alternately (forward, then training step), so that load
    from other work on a shared machine hits them alike and their ratios stay meaningful."""
    rows = []
    for steps in lengths:
        forwards, train_steps = {}, {}
        for model in models:
            policy, state_dim, act_dim = build(model, "hopper-medium", context_len=max(steps, 1))
            data = random_batch(batch, steps, state_dim, act_dim)
            forwards[model] = _acting_sweep(policy, data) if model == "dema-rnn" else _window_forward(policy, data)
            train_steps[model] = TrainStep(policy, data)
        fwd = measure_interleaved(forwards, repeats=5, warmup=1, budget_s=budget_s)
        train = measure_interleaved(train_steps, repeats=5, warmup=1, budget_s=budget_s)
        for model in models:
            row = {"model": model, "steps": steps, "tokens": 3 * steps, "batch": batch,
                   "forward_ms": round(fwd[model]["ms"], 2), "forward_cpu_ms": round(fwd[model]["cpu_ms"], 2),
                   "train_step_ms": round(train[model]["ms"], 2),
                   "train_step_cpu_ms": round(train[model]["cpu_ms"], 2),
                   "train_peak_mb": _round(peak_memory_mb(train_steps[model])),
                   "load_1min": round(os.getloadavg()[0], 2)}
            log(f"  {model:9s} L={steps:5d}  forward {row['forward_ms']:9.1f} ms (cpu {row['forward_cpu_ms']:9.1f})"
                f"  train step {row['train_step_ms']:9.1f} ms (cpu {row['train_step_cpu_ms']:9.1f})"
                f"  peak {row['train_peak_mb']} MB  load {row['load_1min']}")
            rows.append(row)
        del forwards, train_steps
    return rows


def _window_forward(policy, data):
    policy.eval()

    def run():
        with torch.no_grad():
            policy(data)

    return run


def _acting_sweep(policy, data):
    """Act through the sequence one step at a time with the recurrent cache (RNN-like DeMa)."""
    policy.eval()

    def run():
        with torch.no_grad():
            cache = policy.init_cache(data.batch_size, data.states.device)
            for t in range(data.length):
                _, cache = policy.step(data.states[:, t], data.prev_actions[:, t], data.returns_to_go[:, t],
                                       data.timesteps[:, t], cache)

    return run


def _round(value):
    return None if value is None or math.isnan(value) else round(value, 1)


def plot(rows: list[dict], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    # CPU time of the (one-thread) process: on a shared machine it tracks the work done, where the
    # wall time also counts the time other jobs held the core.
    for key, label in (("forward_cpu_ms", "forward, CPU time (ms)"), ("train_step_cpu_ms", "training step, CPU time (ms)"),
                       ("train_peak_mb", "training peak memory (MB)")):
        fig, ax = plt.subplots(figsize=(5, 3.6))
        for model in dict.fromkeys(r["model"] for r in rows):
            pts = [(r["steps"], r[key]) for r in rows if r["model"] == model and r[key] is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=model)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("sequence length (environment steps, 3 tokens each)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / f"cost_{key}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def run_cost_bench(lengths=(10, 20, 50, 100, 300, 1000), batch: int = 8, budget_s: float = 10.0,
                   out_dir: Path = Path("bench_out"), log=print) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    log("parameters and MACs of the paper presets ...")
    presets = preset_table()
    log(f"cost against sequence length, batch {batch} ...")
    curves = cost_curves(lengths, batch, budget_s, log=log)
    result = {"presets": presets, "curves": curves, **machine_info()}
    (out_dir / "cost.json").write_text(json.dumps(result, indent=1) + "\n")
    result["plots"] = [str(p) for p in plot(curves, out_dir)]
    return result
