"""`dema demo`: the main job. DeMa against Decision Transformer on the bundled dataset.

Trains Transformer-like DeMa and DT with the same loop, data, seed and protocol (the paper's
hopper-medium-replay preset under the "demo" protocol: 500 updates and 10 evaluation episodes, so
both fit in a few minutes on 2 CPU cores), scores both in Hopper-v5, and prints a side-by-side
table: D4RL-normalised score, parameters, training time per update, acting time per decision.
Writes learning curves (loss and evaluation score against updates) to a PNG.

    dema demo                      # the table, and runs/demo-<time>/learning_curves.png
    dema demo --json               # {"dema": {"normalized_mean", "params", "train_step_ms", "act_ms", ...}, "dt": {...}}
    dema demo --updates 50         # a shorter run (tests use --quick)

Acting time is measured separately from the evaluation, for ONE environment (batch 1), as the
wall time of `agent.act` per decision with the K-step window; that is the latency a controller
would see. The evaluation itself steps its environments together.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from dema.envs import env_spec
from dema.errors import DataError

DATASET = "hopper-medium-replay-small"
PRESET = "hopper-medium-replay"
MODELS = (("dema", "DeMa"), ("dt", "DT"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dema demo", description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--updates", type=int, default=None, help="updates per model (default: the demo protocol's)")
    parser.add_argument("--episodes", type=int, default=None, help="final evaluation episodes (default: the protocol's)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 4 updates, 1 short episode (checks the pipeline, scores mean nothing)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="output folder (default: runs/demo-<UTC time>)")
    parser.add_argument("--dataset", default=DATASET, help=f"dataset id or file (default: the bundled {DATASET})")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON on stdout")
    args = parser.parse_args(argv)

    # With --json, stdout carries only the JSON; progress goes to stderr.
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    out = Path(args.out or f"runs/demo-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}")
    rows = {}
    for name, label in MODELS:
        config = demo_config(name, args, out)
        say(f"== {label}: {config.schedule.updates} updates on {config.data.dataset} "
            f"({config.threads} threads, protocol {config.protocol}) ==")
        rows[name] = run_one(config, label, say)
    plot = write_plot(out, rows)
    summary = {name: {k: v for k, v in row.items() if k != "label"} for name, row in rows.items()}
    summary["setup"] = {"dataset": rows["dema"]["dataset"], "protocol": "demo", "seed": args.seed,
                        "threads": args.threads, "plot": str(plot), "out": str(out)}
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_table(rows))
        print(f"\nlearning curves: {plot}\nruns: {out}/dema, {out}/dt   (dema eval RUN_DIR to score again)")
    return 0


def demo_config(model: str, args, out: Path):
    from dema.data.load import resolve_id
    from dema.train.config import preset_config

    try:
        dataset = args.dataset if Path(args.dataset).exists() else str(resolve_id(args.dataset))
    except DataError as exc:
        raise DataError(f"{exc} (the demo's dataset is bundled with the package: reinstall with "
                        "`pip install -e .` from the repository)") from None
    config = preset_config(model, dataset, protocol="demo", preset=PRESET)
    schedule, optim = config.schedule, config.optim
    ev = dataclasses.replace(config.eval, targets=(env_spec(PRESET).return_targets[0],))  # the paper's main target
    if args.quick:
        schedule = dataclasses.replace(schedule, updates=4, log_every=2, eval_every=2, checkpoint_every=4)
        optim = dataclasses.replace(optim, warmup_steps=2)
        ev = dataclasses.replace(ev, episodes=1, train_episodes=1, max_episode_steps=20)
    elif args.updates:
        # the protocol's proportions: warm-up 10% of the updates, 4 evaluations during training
        schedule = dataclasses.replace(schedule, updates=args.updates, log_every=max(1, args.updates // 20),
                                       eval_every=max(1, args.updates // 4), checkpoint_every=args.updates)
        optim = dataclasses.replace(optim, warmup_steps=max(1, args.updates // 10))
    if args.episodes:
        ev = dataclasses.replace(ev, episodes=args.episodes)
    return dataclasses.replace(config, seed=args.seed, threads=args.threads, runs_dir=str(out), run_name=model,
                               progress=not args.json, schedule=schedule, optim=optim, eval=ev)


def run_one(config, label: str, say) -> dict:
    from dema.evaluation.evaluate import evaluate_run, load_policy, load_run, write_eval
    from dema.train.loop import train

    result = train(config, log=lambda *_: None)  # the config is in the run dir; keep the demo's output short
    say(f"{label}: {result.step} updates, {result.ms_per_step:.0f} ms/update; evaluating "
        f"{config.eval.episodes} episodes...")
    report = evaluate_run(result.run_dir, checkpoints=("final",))
    write_eval(result.run_dir, report)
    run = load_run(result.run_dir)
    act_ms = acting_latency(load_policy(run, result.run_dir / "model.safetensors"), run,
                            steps=20 if config.eval.max_episode_steps else 200)
    best = report.get("best_during_training") or {}
    say(f"{label}: normalised {report['normalized_mean']:.1f} +- {report['normalized_std']:.1f}, "
        f"{act_ms:.1f} ms per decision")
    return {"label": label, "normalized_mean": report["normalized_mean"], "normalized_std": report["normalized_std"],
            "return_mean": report["return_mean"], "episodes": report["episodes"],
            "best_normalized_mean": best.get("normalized_mean"), "best_step": best.get("step"),
            "params": result.params, "train_step_ms": result.ms_per_step, "act_ms": act_ms,
            "updates": result.step, "train_seconds": result.train_seconds, "run_dir": str(result.run_dir),
            "dataset": config.data.dataset}


def acting_latency(policy, run, steps: int = 200) -> float:
    """Mean ms per `agent.act` for one environment over `steps` decisions (episodes restart)."""
    from dema.evaluation.agent import make_agent
    from dema.evaluation.rollout import make_vector_env

    policy.eval()
    agent = make_agent(policy, run.stats, 1, run.config.model.context_len, run.act_dim, run.config.model.recurrent)
    envs = make_vector_env(run.spec.gym_id, 1)
    try:
        obs, _ = envs.reset(seed=0)
        agent.reset(run.spec.return_targets[0])
        reward, seconds = None, 0.0
        for _ in range(steps):
            start = time.perf_counter()
            action = agent.act(obs, reward)
            seconds += time.perf_counter() - start
            obs, reward, terminated, truncated, _ = envs.step(action)
            if terminated[0] or truncated[0]:
                obs, _ = envs.reset()  # the vector's autoreset already began a new episode
                agent.reset(run.spec.return_targets[0])
                reward = None
    finally:
        envs.close()
    return 1000.0 * seconds / steps


def format_table(rows: dict) -> str:
    any_row = next(iter(rows.values()))
    head = (f"DeMa vs DT on {Path(any_row['dataset']).name} (Hopper-v5), {any_row['updates']} updates each, "
            f"{any_row['episodes']} evaluation episodes, D4RL-normalised score (mean +- std over episodes)")
    lines = [head, "",
             f"{'model':<6} {'score':>14} {'best in training':>17} {'params':>10} {'train ms/update':>16} "
             f"{'act ms/step':>12}"]
    for row in rows.values():
        best = "-" if row["best_normalized_mean"] is None else f"{row['best_normalized_mean']:.1f}"
        score = f"{row['normalized_mean']:.1f} +- {row['normalized_std']:.1f}"
        lines.append(f"{row['label']:<6} {score:>14} {best:>17} {row['params']:>10,} "
                     f"{row['train_step_ms']:>16.1f} {row['act_ms']:>12.2f}")
    return "\n".join(lines)


def write_plot(out: Path, rows: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(10, 4))
    for row in rows.values():
        run_dir = Path(row["run_dir"])
        metrics = _read_csv(run_dir / "metrics.csv")
        ax_loss.plot([int(r["step"]) for r in metrics], [float(r["loss"]) for r in metrics], label=row["label"])
        evals = _read_csv(run_dir / "evals.csv")
        if evals:
            steps = [int(r["step"]) for r in evals]
            mean = np.array([float(r["normalized_mean"]) for r in evals])
            std = np.array([float(r["normalized_std"]) for r in evals])
            ax_score.plot(steps, mean, marker="o", label=row["label"])
            ax_score.fill_between(steps, mean - std, mean + std, alpha=0.2)
    ax_loss.set(xlabel="update", ylabel="training loss (action MSE)", title="training loss")
    ax_score.set(xlabel="update", ylabel="D4RL-normalised score", title="evaluation during training")
    for ax in (ax_loss, ax_score):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = out / "learning_curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))
