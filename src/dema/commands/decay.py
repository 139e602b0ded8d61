"""`dema decay RUN_DIR`: how the current decision's hidden attention decays with distance into
the past, per layer: exponential and power-law fits with their goodness, and the period-3
pattern over the token types (R, a, s). The paper's Figure 4 and its text, quantified.

    dema decay runs/hopper-medium_dema_cpu-main_s0 --episodes 5            # windows, from rollouts
    dema decay runs/hopper-medium_dema-rnn_cpu-main_s0                     # RNN-like: whole episodes
    dema decay RUN --source dataset --view episode --every 50
    dema decay RUN --replot          # decay.csv, decay.json and decay.png again from the records

Decisions come from episodes the policy plays in the simulator (--source rollout, the default:
what it saw when acting; seeds as `dema eval`) or from the run's dataset (--source dataset). View:
the K-step window the model acts on (default for Transformer-like DeMa) or the whole episode up to
the decision (default for RNN-like DeMa). Writes decay_records.npz (the raw rows), decay.csv (the
mean curve per layer), decay.json (fits) and decay.png into --out (default RUN_DIR/decay); the CSV,
JSON and PNG are computed from the records alone (--replot). Definitions: dema.analysis.decay and
docs/ANALYSES.md.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from dema.cli_options import command_parser
from dema.errors import ConfigError, DemaError


def main(argv: list[str]) -> int:
    from dema.analysis.decay import VIEWS

    parser = command_parser("dema decay", __doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run directory of a DeMa model written by `dema train`")
    parser.add_argument("--checkpoint", default="final", help="final (default), best, or a weights file in the run")
    parser.add_argument("--source", choices=("rollout", "dataset"), default="rollout",
                        help="where the decisions come from (default: rollouts of the policy)")
    parser.add_argument("--view", choices=VIEWS, help="window (Transformer-like default) or episode (RNN-like default)")
    parser.add_argument("--episodes", type=int, default=5, help="episodes (default 5)")
    parser.add_argument("--every", type=int, help="one decision every this many steps (default: 5 window, 50 episode)")
    parser.add_argument("--seed", type=int, default=0, help="rollouts: evaluation seed (default 0)")
    parser.add_argument("--target", type=float, help="rollouts: raw return target (default: the environment's first)")
    parser.add_argument("--max-episode-steps", type=int, default=0, help="rollouts: cut episodes (default: env limit)")
    parser.add_argument("--dataset", help="dataset source: id or path (default: the run's)")
    parser.add_argument("--far", type=int, default=10, help="the far-distance fit starts here (tokens, default 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", type=Path, help="output folder (default RUN_DIR/decay)")
    parser.add_argument("--replot", action="flag", help="only recompute CSV, JSON and PNG from decay_records.npz")
    parser.add_argument("--json", action="flag", help="print decay.json")
    args = parser.parse_args(argv)
    out = args.out or Path(args.run_dir) / "decay"
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    if args.far < 1:
        raise ConfigError(f"--far must be >= 1, got {args.far}")
    from dema.analysis.runs import check_writable

    check_writable(out)  # before the rollouts, not after them

    from dema.analysis.decay import DecayRecords, analyse, summary_lines

    records_path = out / "decay_records.npz"
    if args.replot:
        if not records_path.is_file():
            raise DemaError(f"{records_path} does not exist: run `dema decay {args.run_dir}` first")
        try:
            records = DecayRecords.load(records_path)
        except (OSError, ValueError, KeyError) as exc:
            raise DemaError(f"cannot read {records_path}: {exc}") from None
    else:
        records = _collect(args, log)
        out.mkdir(parents=True, exist_ok=True)
        records.save(records_path)
    report = analyse(records, far=args.far)
    _write(records, report, out)
    if args.json:
        print(json.dumps(report))
    else:
        print("\n".join(summary_lines(report)))
        print(f"wrote {out / 'decay.png'}, decay.json, decay.csv and decay_records.npz")
    return 0


def _collect(args, log):
    import torch

    from dema.analysis.decay import collect, dataset_episodes, rollout_episodes
    from dema.analysis.runs import load_trained
    from dema.analysis.surgery import mamba_layers

    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    if args.every is not None and args.every < 1:
        raise ConfigError(f"--every must be >= 1, got {args.every}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    run, policy = load_trained(args.run_dir, args.checkpoint)
    if not mamba_layers(policy):
        raise DemaError(f"the model has no Mamba layers ({policy.cfg.block.value} blocks), hence no hidden attention; "
                        f"give a DeMa run")
    view = args.view or ("episode" if run.config.model.recurrent else "window")
    every = args.every or (50 if view == "episode" else 5)
    meta = {"run_dir": str(args.run_dir), "checkpoint": args.checkpoint, "model": run.config.model_name,
            "dataset": run.config.data.dataset, "source": args.source, "episodes": args.episodes}
    if args.source == "rollout":
        episodes, returns = rollout_episodes(policy, run, args.episodes, args.seed, args.target, args.max_episode_steps)
        meta.update({"seed": args.seed, "returns": returns,
                     "target": args.target if args.target is not None else run.spec.return_targets[0],
                     "normalized_scores": [run.spec.normalize(r) for r in returns]})
    else:
        episodes = dataset_episodes(run, args.episodes, args.dataset)
    meta["lengths"] = [ep.length for ep in episodes]
    log(f"{view} view: {len(episodes)} episodes ({args.source}) of {meta['lengths']} steps, a decision every {every}")
    return collect(policy, episodes, view, every, meta)


def _write(records, report: dict, out: Path) -> None:
    from dema.analysis.decay import curve_rows, plot
    from dema.files import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "decay.json", lambda p: p.write_text(json.dumps(report, indent=1) + "\n"))
    rows = curve_rows(records)

    def write_csv(p: Path) -> None:
        with p.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(out / "decay.csv", write_csv)
    meta = records.meta
    title = (f"hidden-attention decay: {meta.get('model', '')} {meta.get('dataset', '')}, {records.view} view, "
             f"{report['decisions']} decisions ({meta.get('source', '')})")
    plot(records, report, out / "decay.png", title)
