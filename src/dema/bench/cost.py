"""`dema bench cost`: the paper's compute-cost study (its Figure 2 and Table 7), measured here.

Against sequence length (environment steps; 3 tokens per step), at a fixed batch:
- forward: the time to produce actions for one sequence. RNN-like DeMa acts step by step with its
  recurrent cache (L `step` calls: the cost of acting through an L-step episode prefix); the
  Transformer-like models (DeMa, DT, DC) run one forward over an L-step window.
- train step: forward + backward + AdamW on a batch of L-step sequences (RNN-like DeMa trains on
  whole trajectories, so its network and cost per sequence are Transformer-like DeMa's).
- peak memory of the training step (see timing.py for how it is measured).
The preset table (the paper's Table 7), per paper preset (MuJoCo and Atari) and model (DT, DC,
Transformer-like and RNN-like DeMa, and DeMa's variants): parameters; multiply-accumulates (MACs)
of one forward of a K-step window at batch 1 and of one decision (RNN-like: one recurrent step);
and the training step (forward, backward, clip, AdamW; wall and CPU time, peak memory) at the
domain's batch (`TABLE_SETTINGS`: K-step windows; RNN-like DeMa: whole trajectories of
`rnn_steps` steps), on the chosen device.

MACs are counted by torch's FlopCounterMode (FLOPs / 2), which counts matmul-class ops only
(matmuls, einsum, convolutions, attention). Its blind spots, and what is done about them:
- the selective scan's kernels (Numba on the CPU, mamba-ssm's on CUDA) are custom ops it cannot
  see: the count runs every scan through the sequential reference instead (`reference_scans`,
  always on the CPU: MACs do not depend on the device), where the readout C.h is an einsum it
  counts (1 MAC per (Di, L, N) element);
- elementwise work is not counted in any model (softmax, GELU, norms; the scan's decay a*h and
  input (delta u)*B, 2 MACs per (Di, L, N) element, and its exp): the scan's share is reported
  beside the count as `scan_elementwise_macs` (analytic), since it is most of a Mamba layer's work;
- RNN-like acting does its conv over the cached inputs elementwise (SelectiveSSM.step_chunk), so
  its per-decision count leaves out the conv taps (Di x 4 per token).
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
from dema.models.registry import Study, models_in
from dema.scan import compute_paths

COST_MODELS = models_in(Study.COST_CURVES)  # the paper's Figure 2: DeMa (Transformer-, RNN-like), DT, DC
PRESET_MODELS = models_in(Study.COST_TABLE)  # its Table 7: those and DeMa's variants
PRESET_DATASETS = ("hopper-medium", "halfcheetah-medium", "hopper-medium-expert", "atari")
# The training step of the table, per domain: K-step windows at `batch` (MuJoCo: the paper's 64;
# Atari: 8, DeMa's Atari code); RNN-like DeMa: `rnn_batch` whole trajectories of `rnn_steps` steps
# (1000: a full MuJoCo episode; Atari batch 1, the paper's Frostbite setting, to fit a CPU).
TABLE_SETTINGS = {"mujoco": {"batch": 64, "rnn_batch": 8, "rnn_steps": 1000},
                  "atari": {"batch": 8, "rnn_batch": 1, "rnn_steps": 1000}}
ATARI_FRAMES, ATARI_ACTIONS = (4, 84, 84), 4  # Breakout: 4 stacked 84x84 frames, 4 actions


def _scan_width(cfg) -> int:
    if cfg.block is BlockKind.MAMBA_PRE_UP:
        return cfg.d_inner
    if cfg.block is BlockKind.MAMBA_POST_UP:
        return cfg.d_model
    return 0


def scan_elementwise_macs(policy, tokens: int, batch: int = 1) -> int:
    """The selective scans' elementwise MACs over `tokens` tokens (a*h and (delta u)*B: 2 per
    (Di, L, N) element), which FlopCounterMode does not count."""
    cfg = policy.cfg
    return 2 * batch * _scan_width(cfg) * tokens * cfg.d_state * cfg.n_layer


def reference_scans():
    """Every selective scan through the sequential reference (CPU), which FlopCounterMode can see:
    the full scans and the recurrent ones (dema.scan.stateful) both follow the compute paths, and
    the SSM node runs only where the scan is the Numba kernel. In this block and this thread only."""
    return compute_paths(scan="ref")


def count_macs(fn) -> int:
    """MACs (FLOPs / 2) of `fn()` by FlopCounterMode, with the reference scans."""
    counter = FlopCounterMode(display=False)
    with reference_scans(), counter, torch.no_grad():
        fn()
    return counter.get_total_flops() // 2


def _tokens(policy, steps: int) -> int:
    return steps * (3 if policy.cfg.layout.value == "b3ld" else 1)


def forward_macs(policy, state_dim, act_dim, steps: int) -> int:
    """Counted MACs of one forward over a `steps`-step window at batch 1 (the policy on the CPU)."""
    batch = random_batch(1, steps, state_dim, act_dim)
    policy.eval()
    return count_macs(lambda: policy(batch))


def decision_macs(policy, state_dim, act_dim) -> int:
    """Counted MACs of one decision at batch 1 of a recurrent policy: one `step` on a fresh cache."""
    policy.eval()
    discrete = not isinstance(state_dim, int)
    state = torch.rand(1, *state_dim) if discrete else torch.randn(1, state_dim)
    prev = torch.zeros(1, dtype=torch.long) if discrete else torch.zeros(1, act_dim)
    cache = policy.init_cache(1)
    return count_macs(lambda: policy.step(state, prev, torch.ones(1, 1), torch.zeros(1, dtype=torch.long), cache))


def _table_policy(model: str, dataset: str, device="cpu", seed: int = 0):
    """(policy, state_dim, act_dim) of a model's paper preset; Atari: Breakout's frames and actions."""
    if dataset != "atari":
        return build(model, dataset, device=device, seed=seed)
    from dema.models import build_policy, model_config

    torch.manual_seed(seed)
    policy = build_policy(model_config(model, dataset), ATARI_FRAMES, ATARI_ACTIONS, discrete=True).to(device)
    return policy, ATARI_FRAMES, ATARI_ACTIONS


def preset_table(device: str = "cpu", train: bool = True, budget_s: float = 10.0, log=print,
                 settings: dict | None = None) -> list[dict]:
    """Per paper preset and model: parameters, counted MACs (forward of a K-step window and one
    decision, batch 1), the scans' uncounted elementwise MACs, and (with `train`) the training
    step on `device` at the domain's batch (`TABLE_SETTINGS`), the models of one preset timed
    alternately."""
    settings = settings or TABLE_SETTINGS
    rows = []
    for dataset in PRESET_DATASETS:
        s = settings["atari" if dataset == "atari" else "mujoco"]
        steps_by_model, these = {}, []
        for model in PRESET_MODELS:
            policy, state_dim, act_dim = _table_policy(model, dataset)
            cfg = policy.cfg
            k = cfg.context_len
            window = forward_macs(policy, state_dim, act_dim, k)
            row = {"dataset": dataset, "model": model, "context_len": k,
                   "parameters": sum(p.numel() for p in policy.parameters()),
                   "macs": window, "scan_elementwise_macs": scan_elementwise_macs(policy, _tokens(policy, k)),
                   "macs_per_decision": decision_macs(policy, state_dim, act_dim) if cfg.recurrent else window}
            if train:
                batch_size, steps = (s["rnn_batch"], s["rnn_steps"]) if cfg.recurrent else (s["batch"], k)
                on_device, _, _ = _table_policy(model, dataset, device)
                steps_by_model[model] = TrainStep(on_device, random_batch(batch_size, steps, state_dim, act_dim, device=device))
                row.update({"train_batch": batch_size, "train_steps": steps, "device": str(device)})
            these.append(row)
            del policy
        if train:
            log(f"  {dataset}: timing the training step of {', '.join(steps_by_model)} on {device} ...")
            timed = measure_interleaved(steps_by_model, repeats=5, warmup=1, budget_s=budget_s)
            for row in these:
                t = timed[row["model"]]
                row.update({"train_step_ms": round(t["ms"], 1), "train_step_cpu_ms": round(t["cpu_ms"], 1),
                            "train_repeats": t["repeats"],
                            "train_peak_mb": _round(peak_memory_mb(steps_by_model[row["model"]], device))})
        for row in these:
            log(f"  {dataset:20s} {row['model']:9s} params {row['parameters']:>9,}  MACs {row['macs'] / 1e6:7.1f} M"
                + (f"  train {row['train_step_ms']:8.1f} ms  peak {row['train_peak_mb']} MB" if train else ""))
        rows += these
        del steps_by_model
    return rows


def cost_curves(lengths, batch: int, budget_s: float, models=COST_MODELS, log=print, device="cpu") -> list[dict]:
    """Per length, the models are timed alternately (forward, then training step), so that load
    from other work on a shared machine hits them alike and their ratios stay meaningful."""
    rows = []
    for steps in lengths:
        forwards, train_steps = {}, {}
        for model in models:
            policy, state_dim, act_dim = build(model, "hopper-medium", device=device, context_len=max(steps, 1))
            data = random_batch(batch, steps, state_dim, act_dim, device=device)
            forwards[model] = _acting_sweep(policy, data) if model == "dema-rnn" else _window_forward(policy, data)
            train_steps[model] = TrainStep(policy, data)
        fwd = measure_interleaved(forwards, repeats=5, warmup=1, budget_s=budget_s)
        train = measure_interleaved(train_steps, repeats=5, warmup=1, budget_s=budget_s)
        for model in models:
            row = {"model": model, "steps": steps, "tokens": 3 * steps, "batch": batch,
                   "forward_ms": round(fwd[model]["ms"], 2), "forward_cpu_ms": round(fwd[model]["cpu_ms"], 2),
                   "train_step_ms": round(train[model]["ms"], 2),
                   "train_step_cpu_ms": round(train[model]["cpu_ms"], 2),
                   "train_peak_mb": _round(peak_memory_mb(train_steps[model], device)), "device": str(device),
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
                   out_dir: Path = Path("bench_out"), log=print, device: str = "cpu", curves: bool = True,
                   table_train: bool = True) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    log(f"the preset table: parameters, MACs{', training step' if table_train else ''} ({device}) ...")
    presets = preset_table(device, table_train, budget_s, log)
    rows = []
    if curves:
        log(f"cost against sequence length, batch {batch} ({device}) ...")
        rows = cost_curves(lengths, batch, budget_s, log=log, device=device)
    result = {"presets": presets, "table_settings": TABLE_SETTINGS if table_train else None, "curves": rows,
              "device": str(device), **machine_info()}
    (out_dir / "cost.json").write_text(json.dumps(result, indent=1) + "\n")
    result["plots"] = [str(p) for p in plot(rows, out_dir)] if rows else []
    return result
