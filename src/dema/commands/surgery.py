"""`dema surgery RUN_DIR`: score a trained DeMa with one layer's hidden attention (or every
layer's) zeroed, randomised or swapped with another layer's, next to the intact model (Figure 5).

    dema surgery runs/hopper-medium_dema_cpu-main_s0 --episodes 5
    dema surgery RUN --kinds zero,swap --layers 0 --json
    dema surgery RUN --replot          # surgery.csv and surgery.png again from surgery.json

Every manipulation is scored on the same evaluation seeds and episodes as the intact model (the
environments start from the same states), so the differences are the manipulation's alone. The
manipulations are defined in dema.analysis.surgery (docs/ANALYSES.md); layers are numbered from 0.
Writes surgery.json (every episode's return), surgery.csv and surgery.png into --out (default
RUN_DIR/surgery). --json prints {"intact": score, "manipulations": [{"kind", "layer", "with",
"normalized_mean", ...}]}. Transformer-like DeMa only (RNN-like DeMa is refused, see the module).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from dema.cli_options import command_parser
from dema.errors import ConfigError, DemaError


def _ints(text: str, name: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--{name} must be comma-separated integers, got {text!r}") from None


def main(argv: list[str]) -> int:
    parser = command_parser("dema surgery", __doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run directory of a Transformer-like DeMa written by `dema train`")
    parser.add_argument("--checkpoint", default="final", help="final (default), best, or a weights file in the run")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per seed (default 5)")
    parser.add_argument("--seeds", default="0", help="evaluation seeds, comma-separated (default 0)")
    parser.add_argument("--target", type=float, help="raw return target (default: the environment's first)")
    parser.add_argument("--max-episode-steps", type=int, default=0, help="cut episodes (default: the env's limit)")
    parser.add_argument("--kinds", default="zero,random,swap", help="manipulations (default zero,random,swap)")
    parser.add_argument("--layers", help="layers to manipulate one at a time, from 0 (default: every layer)")
    parser.add_argument("--identity", action="flag", default=True,
                        help="check the identity (a layer swapped with itself); --no-identity skips it")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random attention patterns")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", type=Path, help="output folder (default RUN_DIR/surgery)")
    parser.add_argument("--replot", action="flag", help="only rewrite the CSV and PNG from surgery.json")
    parser.add_argument("--json", action="flag", help="print the result as JSON")
    args = parser.parse_args(argv)
    out = args.out or Path(args.run_dir) / "surgery"
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    from dema.analysis.runs import check_writable

    check_writable(out)  # before the rollouts, not after them

    if args.replot:
        path = out / "surgery.json"
        if not path.is_file():
            raise DemaError(f"{path} does not exist: run `dema surgery {args.run_dir}` first")
        try:
            report = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DemaError(f"cannot read {path}: {exc}") from None
    else:
        report = _run(args, log)
    _write(report, out)
    if args.json:
        print(json.dumps(report))
    else:
        print(format_table(report))
        log(f"wrote {out / 'surgery.json'}, surgery.csv and surgery.png")
    return 0


def _run(args, log) -> dict:
    import torch

    from dema.analysis.runs import load_trained
    from dema.analysis.surgery import check_surgery_model, default_manipulations, run_surgery
    from dema.provenance import versions

    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    if args.max_episode_steps < 0:
        raise ConfigError(f"--max-episode-steps must be >= 0, got {args.max_episode_steps}")
    seeds = tuple(_ints(args.seeds, "seeds"))
    if not seeds:
        raise ConfigError("--seeds is empty")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    run, policy = load_trained(args.run_dir, args.checkpoint)
    n_layer = check_surgery_model(policy)
    layers = None if args.layers is None else _ints(args.layers, "layers")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    manipulations = default_manipulations(n_layer, kinds, layers, identity=args.identity)
    target = args.target if args.target is not None else run.spec.return_targets[0]
    log(f"surgery on {args.run_dir} ({args.checkpoint}): {len(manipulations)} manipulations + intact, "
        f"{args.episodes} episodes x seeds {list(seeds)}, target {target:g}")
    report = run_surgery(policy, run.config.model, run.stats, run.spec, manipulations, args.episodes, seeds, target,
                         args.max_episode_steps, run.config.eval.max_envs, args.seed, log)
    report.update({"run_dir": str(args.run_dir), "checkpoint": args.checkpoint, "model": run.config.model_name,
                   "dataset": run.config.data.dataset, "env": run.spec.gym_id, "versions": versions()})
    return report


def _write(report: dict, out: Path) -> None:
    from dema.analysis.surgery import CSV_FIELDS, csv_rows, plot
    from dema.files import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "surgery.json", lambda p: p.write_text(json.dumps(report, indent=1) + "\n"))

    def write_csv(p: Path) -> None:
        with p.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows(csv_rows(report))

    atomic_write(out / "surgery.csv", write_csv)
    title = (f"hidden-attention surgery: {report.get('model', '')} {report.get('dataset', '')}, "
             f"{report['episodes_per_seed']} episodes x seeds {report['seeds']}")
    plot(report, out / "surgery.png", title)


def format_table(report: dict) -> str:
    from dema.analysis.surgery import csv_rows

    lines = ["| manipulation | layer | with | normalised score | change |", "| --- | --- | --- | ---: | ---: |"]
    for r in csv_rows(report):
        lines.append(f"| {r['kind']} | {r['layer']} | {r['with']} | {r['normalized_mean']:.1f} +- "
                     f"{r['normalized_std']:.1f} | {r['change']:+.1f} |")
    return "\n".join(lines)
