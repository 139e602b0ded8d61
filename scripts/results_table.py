"""Write docs/RESULTS.md from the run directories: DeMa against DT, every number from the runs.

    .venv/bin/python scripts/results_table.py                    # runs/*_cpu-1k_s*/ -> stdout
    .venv/bin/python scripts/results_table.py --protocol cpu-1k --out docs/RESULTS.md

Reads, per run directory: config.json (protocol, updates, seed, model), eval.json (final
checkpoint scores per target, the best evaluation during training, versions, machine),
metrics.csv (time in updates) and eval.json's "training" entry (wall time with evaluations; for
runs older than that entry, the time between config.json and eval.json being written).
Nothing is typed in by hand; rerun the script after the runs change.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL_ORDER = ["dema", "dt", "dema-bl3d", "dema-post", "dema-rnn", "dc", "bc"]
LABEL = {"dema": "DeMa", "dt": "DT", "dema-bl3d": "DeMa-BL3D", "dema-post": "DeMa-post", "dema-rnn": "DeMa-RNN",
         "dc": "DC", "bc": "BC"}


def load_runs(runs_dir: Path, protocol: str) -> list[dict]:
    runs = []
    for eval_path in sorted(runs_dir.glob(f"*_{protocol}_s*/eval.json")):
        run_dir = eval_path.parent
        report = json.loads(eval_path.read_text())
        config = json.loads((run_dir / "config.json").read_text())
        training = report.get("training") or {}
        wall = training.get("wall_seconds")
        if wall is None:  # runs older than the wall_seconds field: config.json written at start, eval.json at the end
            wall = eval_path.stat().st_mtime - (run_dir / "config.json").stat().st_mtime
        with (run_dir / "metrics.csv").open() as f:
            last = list(csv.DictReader(f))[-1]  # updates-only time, logged at the last step
        runs.append({"dir": run_dir, "report": report, "config": config, "dataset": _dataset_name(config),
                     "model": config["model_name"], "seed": config["seed"], "wall_seconds": wall,
                     "train_seconds": float(last["train_seconds"]), "steps": int(last["step"])})
    return runs


def _dataset_name(config: dict) -> str:
    name = Path(config["data"]["dataset"]).name
    return name[:-5] if name.endswith(".hdf5") else name


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def table(runs: list[dict]) -> list[str]:
    groups = defaultdict(list)
    for run in runs:
        groups[(run["dataset"], run["model"])].append(run)
    lines = ["| dataset | model | seeds | updates | final score (target 1) | final score, all targets | "
             "best during training | best checkpoint, re-evaluated | params | ms / update | wall time per run |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    order = sorted(groups, key=lambda k: (k[0], MODEL_ORDER.index(k[1]) if k[1] in MODEL_ORDER else 99))
    for dataset, model in order:
        group = sorted(groups[(dataset, model)], key=lambda r: r["seed"])
        reports = [r["report"] for r in group]
        seeds = [r["seed"] for r in group]
        finals = [rep["normalized_mean"] for rep in reports]
        if len(group) == 1:  # one seed: the spread is over episodes
            rep = reports[0]
            final = f"{rep['normalized_mean']:.1f} ± {rep['normalized_std']:.1f} (episodes, n={rep['episodes']})"
        else:
            final = f"{_mean_std(finals)} (seeds)"
        per_target = []
        for i, target in enumerate(reports[0]["targets"]):
            per_target.append(f"{target:g}: {_mean_std([rep['per_target'][i]['normalized_mean'] for rep in reports])}")
        best = [rep["best_during_training"] for rep in reports if rep.get("best_during_training")]
        best_text = (f"{_mean_std([b['normalized_mean'] for b in best])} (at {', '.join(str(b['step']) for b in best)};"
                     f" {best[0]['episodes']} ep.)") if best else "-"
        rebest = [rep["best_checkpoint"] for rep in reports if rep.get("best_checkpoint")]
        if len(rebest) == 1:
            rebest_text = f"{rebest[0]['normalized_mean']:.1f} ± {rebest[0]['normalized_std']:.1f}"
        else:
            rebest_text = _mean_std([b["normalized_mean"] for b in rebest]) if rebest else "-"
        ms = [1000 * r["train_seconds"] / r["steps"] for r in group]
        walls = [r["wall_seconds"] / 60 for r in group]
        params = reports[0].get("params") or _params(group[0]["config"], group[0]["dir"])
        lines.append(
            f"| {dataset} | {LABEL.get(model, model)} | {', '.join(map(str, seeds))} | {reports[0]['updates']:,} | "
            f"{final} | {'; '.join(per_target)} | {best_text} | {rebest_text} | {params:,} | "
            f"{(statistics.mean(ms) if ms else float('nan')):.0f} | {statistics.mean(walls):.0f} min |")
    return lines


def _params(config: dict, run_dir: Path) -> int:
    from dema.models import ModelConfig, build_policy

    norm = json.loads((run_dir / "normalization.json").read_text())
    policy = build_policy(ModelConfig.from_dict(config["model"]), norm["state_dim"], norm["act_dim"])
    return sum(p.numel() for p in policy.parameters())


def head_to_head(runs: list[dict]) -> list[str]:
    by = defaultdict(dict)
    for run in runs:
        by[run["dataset"]].setdefault(run["model"], []).append(run["report"])
    lines = ["| dataset | seeds (DeMa / DT) | DeMa final | DT final | DeMa − DT (final) | DeMa best ckpt | DT best ckpt | "
             "DeMa − DT (best ckpt) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    wins = {"final": 0, "best": 0, "n": 0}
    for dataset in sorted(by):
        if not {"dema", "dt"} <= set(by[dataset]):
            continue
        final = {m: statistics.mean(r["normalized_mean"] for r in by[dataset][m]) for m in ("dema", "dt")}
        best = {m: _mean_or_nan([r["best_checkpoint"]["normalized_mean"] for r in by[dataset][m]
                                 if r.get("best_checkpoint")]) for m in ("dema", "dt")}
        seeds = f"{len(by[dataset]['dema'])} / {len(by[dataset]['dt'])}"
        lines.append(f"| {dataset} | {seeds} | {final['dema']:.1f} | {final['dt']:.1f} | {final['dema'] - final['dt']:+.1f} | "
                     f"{best['dema']:.1f} | {best['dt']:.1f} | {best['dema'] - best['dt']:+.1f} |")
        wins["final"] += final["dema"] > final["dt"]
        wins["best"] += best["dema"] > best["dt"]
        wins["n"] += 1
    if wins["n"]:
        lines += ["", f"DeMa scores higher than DT on {wins['final']} of {wins['n']} datasets with the final weights "
                      f"and on {wins['best']} of {wins['n']} with the best checkpoint (counted by the script)."]
    return lines


def _mean_or_nan(values: list[float]) -> float:
    return statistics.mean(values) if values else float("nan")


def protocol_text(runs: list[dict]) -> list[str]:
    config = runs[0]["config"]
    o, s, e = config["optim"], config["schedule"], config["eval"]
    report = runs[0]["report"]
    v = report["versions"]
    machine = f"{v.get('cpu', 'CPU')}, {v.get('cpu_count', '?')} cores" if v.get("cpu") else v["platform"]
    lrs = ", ".join(sorted({f"{r['dataset']} {r['config']['optim']['lr']:g}" for r in runs}))
    from datetime import datetime, timezone

    stamp = lambda t: datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M")
    start = min((r["dir"] / "normalization.json").stat().st_mtime for r in runs)
    end = max((r["dir"] / "eval.json").stat().st_mtime for r in runs)
    return [
        f"- {len(runs)} runs, written between {stamp(start)} and {stamp(end)} UTC by `scripts/run_results.sh` "
        f"(seeds {sorted({r['seed'] for r in runs})}).",
        f"- Protocol `{config['protocol']}` (src/dema/presets/protocol-{config['protocol']}.json over the paper's "
        f"per-dataset presets): {s['updates']:,} updates (the paper: 100,000), AdamW lr per preset "
        f"({lrs}), weight decay "
        f"{o['weight_decay']:g}, linear warm-up {o['warmup_steps']:,} updates, grad-norm clip {o['grad_clip']:g}, "
        f"batch {o['batch_size']}, K {config['model']['context_len']}, return-to-go scale {config['data']['reward_scale']:g}.",
        f"- Evaluation: Gymnasium MuJoCo v5, {e['episodes']} episodes per target per evaluation seed "
        f"(seeds {e['seeds']}), targets from src/dema/envs.py (the first is the headline), final checkpoint; "
        f"during training every {s['eval_every']:,} updates with {e['train_episodes']} episodes on the first target "
        f"(\"best during training\" is the maximum of those, as the paper's code reports).",
        f"- Models: {_sizes_note(runs)}; {config['threads'] or 'default'} torch thread(s) per run "
        f"(scripts/run_results.sh runs the DeMa and DT lanes side by side).",
        f"- Machine: {machine}, shared with other jobs (collection, benchmarks) during the runs; "
        f"torch {v['torch']}, gymnasium {v['gymnasium']}, mujoco {v['mujoco']}, Python {v['python']}.",
    ]


def _sizes_note(runs: list[dict]) -> str:
    """Whether every run used the paper's model preset, checked against dema.models.model_config."""
    from dema.models import model_config

    changed = sorted({f"{r['dataset']} {r['model']}" for r in runs
                      if model_config(r["model"], r["config"]["preset"]).to_dict() != r["config"]["model"]})
    if not changed:
        return "the paper's sizes for every run (dema.models.model_config, checked)"
    return "CHANGED from the paper's sizes for " + ", ".join(changed) + " (see each run's config.json)"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs-dir", default=str(ROOT / "runs"))
    parser.add_argument("--protocol", default="cpu-1k")
    parser.add_argument("--out", default=None, help="write here instead of stdout")
    args = parser.parse_args(argv)
    runs = load_runs(Path(args.runs_dir), args.protocol)
    if not runs:
        print(f"no finished runs (eval.json) for protocol {args.protocol} under {args.runs_dir}", file=sys.stderr)
        return 1
    lines = [
        "# Results: DeMa against Decision Transformer on collected MuJoCo data",
        "",
        "Generated by `scripts/results_table.py` from the run directories written by `scripts/run_results.sh`",
        f"(`dema train` + the final `dema eval`); do not edit by hand. Command: "
        f"`.venv/bin/python scripts/results_table.py --protocol {args.protocol} --out {args.out or 'docs/RESULTS.md'}`.",
        "",
        "Scores are D4RL-normalised (100 × (R − random) / (expert − random), D4RL's reference returns) on datasets",
        "collected here by `dema collect` (docs/DATASETS.md), not D4RL's own files, so they are not comparable with",
        "the paper's tables. With one seed, ± is the spread over evaluation episodes, not over training seeds;",
        "with several, the head-to-head table averages the seeds' scores and the run table gives mean ± std over seeds.",
        "",
        "## Setup",
        "",
        *protocol_text(runs),
        "",
        "## DeMa against DT",
        "",
        *head_to_head(runs),
        "",
        "## Every run",
        "",
        *table(runs),
        "",
        "Columns: final score = the last checkpoint on the first target (mean ± std); all targets = the same per",
        "target; best during training = the maximum of the periodic evaluations (fewer episodes, so optimistic:",
        "the paper's code reports this kind of figure); best checkpoint, re-evaluated = the weights of that",
        "evaluation scored again with the final evaluation's episodes and seeds (first target; a fairer \"best\");",
        "ms / update = wall time of the updates alone; wall time = the whole run with its evaluations.",
    ]
    unfinished = sorted(p.parent.name for p in Path(args.runs_dir).glob(f"*_{args.protocol}_s*/config.json")
                        if not (p.parent / "eval.json").is_file())
    if unfinished:
        lines += ["", f"Not finished when this file was generated (no eval.json), so not in the tables: "
                      f"{', '.join(unfinished)}."]
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
