"""`dema eval RUN_DIR`: score a trained run in the simulator and write RUN_DIR/eval.json.

    dema eval runs/hopper-medium_dema_paper_s0
    dema eval runs/hopper-medium_dema_paper_s0 --episodes 10 --seeds 0 1 2 --targets 3600 1800
    dema eval runs/hopper-medium_dema_paper_s0 --video 2           # also RUN_DIR/videos/*.mp4 of 2 episodes
    dema eval runs/hopper-medium_dema-rnn_paper_s0 --runtime onnx    # act through ONNX Runtime (dema export)

Defaults come from the run's config.json (its `eval` section); options override them and every
choice is recorded in eval.json with the numbers: targets, seeds, episodes, checkpoints (final and
best during training), env, package versions.

`--video N` records the first N episodes of the final checkpoint at the first target (seed by seed),
with the step and the return so far drawn on every frame, and lists them in eval.json ("videos").
The scores are the same with and without it. MuJoCo renders off-screen (EGL, else OSMesa, unless
MUJOCO_GL says otherwise); MP4 needs the `video` extra, GIF (`--video-format gif`) only Pillow.
"""

from __future__ import annotations

import json

from dema.cli_options import command_parser
from dema.errors import ConfigError


def main(argv: list[str]) -> int:
    from dema.evaluation.evaluate import check_choices, check_runtime, evaluate_run, write_eval
    from dema.run import RunDir
    from dema.run.config import check_device

    parser = command_parser("dema eval", __doc__.split("\n")[0])
    parser.add_argument("run_dir", help="a run directory written by `dema train`")
    parser.add_argument("--checkpoint", choices=["final", "best", "both"], default="both",
                        help="which weights to score (default: both; the final one is the headline)")
    parser.add_argument("--episodes", type=int, help="episodes per target and seed (default: the run's eval.episodes)")
    parser.add_argument("--seeds", type=int, nargs="+", help="evaluation seeds (default: the run's eval.seeds)")
    parser.add_argument("--targets", type=float, nargs="+", help="raw return targets (default: the run's, else the env table's)")
    parser.add_argument("--max-episode-steps", type=int, help="cut episodes at this many steps (default: the env's limit)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runtime", default="torch",
                        help="what acts: torch (default), or onnx: the policy exported as `dema export` writes it, "
                             "acting through ONNX Runtime (CPU, one thread; the same episodes give the same returns)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default: 1; acting is a small batch per step, and extra threads "
                             "mostly wait on each other on a busy machine)")
    parser.add_argument("--video", type=int, default=0, metavar="N",
                        help="record the first N episodes of the final checkpoint at the first target to "
                             "RUN_DIR/videos/ (default: 0, none)")
    parser.add_argument("--video-format", default="mp4", metavar="{mp4,gif}",
                        help="mp4 (needs pip install -e \".[video]\") or gif (default: mp4)")
    parser.add_argument("--json", action="flag", help="print eval.json to stdout")
    args = parser.parse_args(argv)
    check_choices(1 if args.episodes is None else args.episodes, args.targets or (),
                  args.max_episode_steps or 0, args.seeds or ())
    video = _video_option(args.video, args.video_format)
    check_device(args.device)
    run = RunDir(args.run_dir)
    loaded = run.load()  # "not a trained run" before anything else
    check_runtime(args.runtime, loaded.spec, args.device, loaded.config.model.recurrent)
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
                              args.max_episode_steps, args.device, video, runtime=args.runtime)
        path = write_eval(args.run_dir, report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
        for shown in report.get("videos", []):
            print(f"wrote {run.path / shown['file']} (seed {shown['seed']}, episode {shown['episode']}: "
                  f"return {shown['return']:.1f} in {shown['length']} steps)")
        print(f"wrote {path}")
    return 0


def _video_option(count: int, fmt: str):
    """--video N and --video-format as evaluate_run takes them (None: no video), checked before the run is read."""
    from dema.evaluation.video import VideoRequest, check_format

    if count < 0:
        raise ConfigError(f"--video must be >= 0 (the episodes to record; 0: none), got {count}")
    check_format(fmt, installed=count > 0)
    return VideoRequest(first=count, fmt=fmt) if count else None


def format_report(report: dict) -> str:
    from dema.evaluation.evaluate import cut_note

    runtime = ", acting through ONNX Runtime" if report.get("runtime") == "onnx" else ""
    lines = [f"{report['model']} on {report['dataset']} ({report['env']}, protocol {report['protocol']}, "
             f"{report['updates']} updates{runtime})"]
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
