"""`dema eval RUN_DIR`: score a trained run in the simulator and write RUN_DIR/eval.json.

    dema eval runs/hopper-medium_dema_paper_s0
    dema eval runs/hopper-medium_dema_paper_s0 --episodes 10 --seeds 0 1 2 --targets 3600 1800

Defaults come from the run's config.json (its `eval` section); options override them and every
choice is recorded in eval.json with the numbers: targets, seeds, episodes, checkpoints (final and
best during training), env, package versions.
"""

from __future__ import annotations

import argparse
import json

from dema.errors import ConfigError


def main(argv: list[str]) -> int:
    from dema.evaluation.evaluate import check_choices, evaluate_run, write_eval
    from dema.run import RunDir
    from dema.run.config import check_device

    parser = argparse.ArgumentParser(prog="dema eval", description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("run_dir", help="a run directory written by `dema train`")
    parser.add_argument("--checkpoint", choices=["final", "best", "both"], default="both",
                        help="which weights to score (default: both; the final one is the headline)")
    parser.add_argument("--episodes", type=int, help="episodes per target and seed (default: the run's eval.episodes)")
    parser.add_argument("--seeds", type=int, nargs="+", help="evaluation seeds (default: the run's eval.seeds)")
    parser.add_argument("--targets", type=float, nargs="+", help="raw return targets (default: the run's, else the env table's)")
    parser.add_argument("--max-episode-steps", type=int, help="cut episodes at this many steps (default: the env's limit)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default: 1; acting is a small batch per step, and extra threads "
                             "mostly wait on each other on a busy machine)")
    parser.add_argument("--json", action="store_true", help="print eval.json to stdout")
    args = parser.parse_args(argv)
    check_choices(1 if args.episodes is None else args.episodes, args.targets or (),
                  args.max_episode_steps or 0, args.seeds or ())
    check_device(args.device)
    run = RunDir(args.run_dir)
    run.load()  # "not a trained run" before anything else
    if args.checkpoint == "best" and not run.best_weights.is_file():
        raise ConfigError(f"{run.best_weights} does not exist: no evaluation ran during training "
                          "(schedule.eval_every 0, or training stopped before the first); use --checkpoint final")

    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    checkpoints = ("final", "best") if args.checkpoint == "both" else (args.checkpoint,)
    if args.checkpoint == "best":
        checkpoints = ("final", "best")  # the final one is the report's headline; it is cheap to include
    with run.lock():  # one process per run: not while it trains, and not two evaluations at once
        report = evaluate_run(args.run_dir, checkpoints, args.episodes, args.seeds, args.targets,
                              args.max_episode_steps, args.device)
        path = write_eval(args.run_dir, report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
        print(f"wrote {path}")
    return 0


def format_report(report: dict) -> str:
    from dema.evaluation.evaluate import cut_note

    lines = [f"{report['model']} on {report['dataset']} ({report['env']}, protocol {report['protocol']}, "
             f"{report['updates']} updates)"]
    rows = [("final", report)]
    if report.get("best_checkpoint"):
        rows.append(("best ckpt", report["best_checkpoint"]))
    for label, r in rows:
        for t in r["per_target"]:
            lines.append(f"  {label:<9} target {t['target']:>8g}: normalised {t['normalized_mean']:6.1f} +- "
                         f"{t['normalized_std']:5.1f}   return {t['return_mean']:8.1f} +- {t['return_std']:7.1f}"
                         f"   ({t['episodes']} episodes, seeds {r['seeds']}"
                         f"{cut_note(t.get('episodes_cut'), t['episodes'], r.get('cut_at_steps'))})")
    best = report.get("best_during_training")
    if best:
        lines.append(f"  best evaluation during training: normalised {best['normalized_mean']:.1f} at step "
                     f"{best['step']} ({best['episodes']} episodes)")
    return "\n".join(lines)
