"""`dema demo`: the main job. DeMa against Decision Transformer on the bundled dataset.

Trains Transformer-like DeMa and DT with the same loop, data, seed and protocol (the paper's
hopper-medium-replay preset under the "demo" protocol: 500 updates and 10 evaluation episodes, so
both fit in a few minutes on 2 CPU cores), scores both in Hopper-v5, and prints a side-by-side
table: D4RL-normalised score, parameters, training time per update, acting time per decision.
Writes learning curves (loss and evaluation score against updates) to a PNG, and beside them a GIF
of DeMa's best episode of its final evaluation (replayed with the same seed, so it is that very
episode, and recorded; `dema.evaluation.video`), when MuJoCo can render off-screen here.

    dema demo                      # the table, runs/demo-<time>/learning_curves.png and dema_best_episode.gif
    dema demo --json               # {"dema": {"normalized_mean", "params", "train_step_ms", "act_ms", ...}, "dt": {...}}
    dema demo --updates 50         # a shorter run (tests use --quick)

On 2 cores the two models train side by side, one process and one torch thread each (small
models gain little from a second thread, and on a busy machine two threads per op lose badly);
`--sequential --threads 2` trains them one after the other instead. Training time per update is
measured inside each run (updates only, after the first log interval, which pays for compiling
the Numba scan). Acting time is measured afterwards, one model at a time,
for ONE environment (batch 1), as the wall time of `agent.act` per decision with the K-step
window; that is the latency a controller would see. The evaluation steps its environments together.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from dema.cli_options import command_parser
from dema.envs import env_spec
from dema.errors import DataError
from dema.models import registry

DATASET = "hopper-medium-replay-small"
PRESET = "hopper-medium-replay"
MODELS = tuple((name, registry.label(name)) for name in registry.models_in(registry.Study.HEADLINE))  # DeMa and DT


def main(argv: list[str]) -> int:
    parser = command_parser("dema demo", __doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=None, help="updates per model (default: the demo protocol's)")
    parser.add_argument("--episodes", type=int, default=None, help="final evaluation episodes (default: the protocol's)")
    parser.add_argument("--quick", action="flag",
                        help="a smoke run: 4 updates, 1 short episode (checks the pipeline, scores mean nothing)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads per model (default: 1; the two models train side by side)")
    parser.add_argument("--sequential", action="flag",
                        help="train the models one after the other instead of side by side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="output folder (default: runs/demo-<UTC time>)")
    parser.add_argument("--dataset", default=DATASET, help=f"dataset id or file (default: the bundled {DATASET})")
    parser.add_argument("--json", action="flag", help="print the comparison as JSON on stdout")
    args = parser.parse_args(argv)

    # With --json, stdout carries only the JSON; progress goes to stderr.
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    out = Path(args.out or f"runs/demo-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}")
    configs = {name: demo_config(name, args, out) for name, _ in MODELS}
    no_gif = gif_problem()  # said now, not after minutes of training
    if no_gif:
        say(f"no GIF of DeMa's best episode will be written: {no_gif}")
    any_config = configs["dema"]
    mode = "one after the other" if args.sequential else "side by side, one process each"
    say(f"training DeMa and DT, {any_config.schedule.updates} updates each on {any_config.data.dataset} "
        f"({mode}, {args.threads} torch thread(s) per model, protocol demo)")
    jobs = [(configs[name].to_dict(), label, args.json) for name, label in MODELS]
    if args.sequential:
        results = [_train_and_score(*job) for job in jobs]
    else:
        pool = multiprocessing.get_context("spawn").Pool(len(jobs))
        try:
            results = pool.starmap(_train_and_score, jobs)
        finally:
            pool.close()  # let the workers exit on their own (terminate() leaks their semaphores)
            pool.join()
    rows = dict(zip([name for name, _ in MODELS], results))
    for name, label in MODELS:  # acting latency: measured here, one model at a time, nothing else running
        rows[name]["act_ms"] = acting_latency(Path(rows[name]["run_dir"]), args.threads,
                                              steps=20 if configs[name].eval.max_episode_steps else 200)
        say(f"{label}: {rows[name]['act_ms']:.2f} ms per decision (1 environment)")
    plot = write_plot(out, rows)
    gif = None if no_gif else best_episode_gif(out, Path(rows["dema"]["run_dir"]), say)
    summary = {name: {k: v for k, v in row.items() if k != "label"} for name, row in rows.items()}
    summary["setup"] = {"dataset": rows["dema"]["dataset"], "protocol": "demo", "seed": args.seed,
                        "threads_per_model": args.threads, "side_by_side": not args.sequential,
                        "plot": str(plot), "gif": gif and str(gif), "out": str(out)}
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_table(rows))
        print(f"\nlearning curves: {plot}" + (f"\nDeMa's best episode: {gif}" if gif else "")
              + f"\nruns: {out}/dema, {out}/dt   (dema eval RUN_DIR to score again)")
    return 0


def demo_config(model: str, args, out: Path):
    from dema.data.load import resolve_id
    from dema.run.config import preset_config

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
    # no progress bars: two processes write to one terminal; one log line per interval instead
    return dataclasses.replace(config, seed=args.seed, threads=args.threads, runs_dir=str(out), run_name=model,
                               progress=False, schedule=schedule, optim=optim, eval=ev)


def _train_and_score(config_dict: dict, label: str, quiet: bool) -> dict:
    """Train one model and score its final checkpoint (runs in a worker process)."""
    from dema.run.config import TrainConfig
    from dema.train.pipeline import train_and_evaluate

    config = TrainConfig.from_dict(config_dict)
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if quiet else (lambda *a: print(*a, flush=True))
    log = lambda line: None if line.startswith("config:") else say(f"[{label}] {line}")
    result, report = train_and_evaluate(config, score=True, checkpoints=("final",), log=log)
    best = report.get("best_during_training") or {}
    say(f"[{label}] normalised {report['normalized_mean']:.1f} +- {report['normalized_std']:.1f}")
    return {"label": label, "normalized_mean": report["normalized_mean"], "normalized_std": report["normalized_std"],
            "return_mean": report["return_mean"], "episodes": report["episodes"],
            "best_normalized_mean": best.get("normalized_mean"), "best_step": best.get("step"),
            "params": result.params, "train_step_ms": _steady_ms_per_step(result.run_dir), "updates": result.step,
            "train_seconds": result.train_seconds, "run_dir": str(result.run_dir), "dataset": config.data.dataset}


def _steady_ms_per_step(run_dir: Path) -> float:
    """ms per update after the first log interval (which pays for kernel compilation and warm-up)."""
    rows = _read_csv(Path(run_dir) / "metrics.csv")
    if len(rows) < 2:
        return 1000.0 * float(rows[-1]["train_seconds"]) / int(rows[-1]["step"])
    first, last = rows[0], rows[-1]
    seconds = float(last["train_seconds"]) - float(first["train_seconds"])
    return 1000.0 * seconds / (int(last["step"]) - int(first["step"]))


def acting_latency(run_dir: Path, threads: int, steps: int = 200) -> float:
    """Mean ms per `agent.act` for one environment over `steps` decisions (episodes restart)."""
    import torch

    from dema.evaluation.agent import make_agent
    from dema.evaluation.evaluate import load_policy, load_run
    from dema.evaluation.simulators import make_vector_env

    torch.set_num_threads(threads)
    run = load_run(run_dir)
    policy = load_policy(run, run_dir / "model.safetensors").eval()
    agent = make_agent(policy, run.stats, run.spec, run.config.model, 1)
    envs = make_vector_env(run.spec, 1)
    try:
        obs, _ = envs.reset(seed=0)
        agent.reset(run.spec.return_targets[0])
        reward, seconds = None, 0.0
        for i in range(steps + 3):
            start = time.perf_counter()
            action = agent.act(obs, reward)
            if i >= 3:  # the first decisions compile kernels (Numba) and warm caches: not timed
                seconds += time.perf_counter() - start
            obs, reward, terminated, truncated, _ = envs.step(action)
            if terminated[0] or truncated[0]:
                obs, _ = envs.reset()  # the vector's autoreset already began a new episode
                agent.reset(run.spec.return_targets[0])
                reward = None
    finally:
        envs.close()
    return 1000.0 * seconds / steps


GIF_NAME = "dema_best_episode.gif"
GIF_SIZE = 160  # pixels per side: about 9 KB a frame, so 0.9 MB for a 500-step Hopper episode (100 frames)


def gif_problem() -> str | None:
    """Why the demo cannot record its GIF here (no off-screen OpenGL for MuJoCo), or None."""
    from dema.errors import ConfigError
    from dema.evaluation.rendering import offscreen_backend

    try:
        offscreen_backend()
    except ConfigError as exc:
        return str(exc)
    return None


def best_episode_gif(out: Path, run_dir: Path, say) -> Path:
    """The episode of the highest return in the run's final evaluation (eval.json), played again with
    the same seeds and recorded: out/dema_best_episode.gif. Evaluation is deterministic, so the replay
    is that episode (its return is checked against eval.json's)."""
    from dema.evaluation.evaluate import evaluate_run
    from dema.evaluation.video import VideoRequest
    from dema.run import RunDir

    report = json.loads((run_dir / "eval.json").read_text())
    headline = report["per_target"][0]
    best = int(np.argmax(headline["returns"]))
    per_seed = report["episodes_per_seed"]
    seed, episode = report["seeds"][best // per_seed], best % per_seed
    say(f"[DeMa] recording its best episode (seed {seed}, episode {episode}: return {headline['returns'][best]:.1f})...")
    request = VideoRequest(episodes=((headline["target"], seed, episode),), fmt="gif", size=GIF_SIZE)
    # the evaluation's own choices (the run's eval section, as the worker scored it), one target
    replay = evaluate_run(run_dir, ("final",), episodes=per_seed, seeds=tuple(report["seeds"]),
                          targets=(headline["target"],), video=request, video_folder=out)
    video = replay["videos"][0]
    if video["return"] != headline["returns"][best]:
        say(f"warning: the replayed episode returned {video['return']:.1f}, eval.json says {headline['returns'][best]:.1f}")
    path = out / GIF_NAME
    os.replace(out / RunDir.video_name("final", headline["target"], seed, episode, "gif"), path)
    return path


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
    """The rows of a run's metrics.csv or evals.csv whose fields are numbers (RunDir.numeric_rows: a
    damaged row, bytes that are not text, is left out, never a traceback)."""
    from dema.run import EVAL_FIELDS, METRIC_FIELDS, RunDir

    fields = METRIC_FIELDS if path.name == "metrics.csv" else EVAL_FIELDS
    return RunDir(path.parent).numeric_rows(path, fields)[0]
