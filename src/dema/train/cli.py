"""`dema train`: train a model on an offline dataset, or resume a run.

    dema train --model dema --dataset hopper-medium                       # the paper's protocol
    dema train --model dt --dataset hopper-medium --protocol cpu-short    # shorter, for CPUs
    dema train --model dema --dataset hopper-medium --optim.lr 3e-4 --model.n-layer 2
    dema train --resume runs/hopper-medium_dema_paper_s0                  # continue exactly

`--model`, `--dataset` and `--protocol` choose the defaults (preset + protocol, see
dema.run.config); every other field of TrainConfig is an option on top (`--help` lists them with
the chosen defaults). Booleans as every command's (dema.cli_options): `--overwrite` sets one,
`--no-progress` clears one, and the old form `--overwrite True` still works; unknown options are an
error. On resume the saved config is used; only the schedule, the evaluation and the output options
may change (anything else would break the exact continuation).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from dema.cli_options import add_dataclass_options, command_parser, dataclass_values, replace_fields
from dema.errors import ConfigError, DemaError
from dema.run import RunDir
from dema.run.config import TrainConfig, available_protocols, preset_config

_USAGE = """dema train --model MODEL --dataset DATASET [--protocol PROTOCOL] [OPTIONS]
       dema train --resume RUN_DIR [OPTIONS]"""

# The options that choose a new run's defaults, and their defaults (in preset_config's order).
_CHOOSERS = {"--model": "dema", "--dataset": "hopper-medium", "--protocol": "paper", "--preset": None}
# TrainConfig's fields those options set (not options of their own)
_CHOSEN_FIELDS = {"model_name", "protocol", "preset"}

# Fields that may change when resuming: they do not affect the weights' trajectory.
_RESUMABLE_CHANGES = {"schedule", "eval", "progress", "threads", "tensorboard"}


def build_parser(default: TrainConfig | None = None) -> tuple[argparse.ArgumentParser, list[str]]:
    """`dema train`'s parser, every field of TrainConfig an option showing `default`'s value (the
    chosen preset's), and the dests of those options."""
    from dema.models import MODELS

    default = default or preset_config(_CHOOSERS["--model"], _CHOOSERS["--dataset"])
    parser = command_parser("dema train", usage=_USAGE, description="\n\n".join(__doc__.split("\n\n")[:2]))
    choose = parser.add_argument_group("what to train (they choose the defaults below)")
    choose.add_argument("--model", help=f"the model: {', '.join(MODELS)} (default: dema)")
    choose.add_argument("--dataset", help="a dataset id (datasets/, bundled), a Minari id (mujoco/hopper/medium-v0: "
                        "Minari's root, downloaded when missing) or a file (default: hopper-medium)")
    choose.add_argument("--protocol", help=f"{', '.join(available_protocols())} (default: paper; cpu-short = "
                                           "fewer updates and episodes)")
    choose.add_argument("--preset", help="the sizes and learning rate to start from (e.g. hopper-medium-replay); "
                        "default: the preset the dataset's name matches, else its environment's defaults "
                        "(hopper-default)")
    choose.add_argument("--resume", metavar="RUN_DIR",
                        help="continue the run in RUN_DIR exactly where its last checkpoint stopped")
    fields = parser.add_argument_group("run options", "Every field of TrainConfig is an option over the preset.")
    return parser, add_dataclass_options(parser, default, skip=_CHOSEN_FIELDS, group=fields)


def parse(argv: list[str]) -> tuple[TrainConfig, bool]:
    """(config, resume) from the command line."""
    head = command_parser("dema train", add_help=False)
    for option in [*_CHOOSERS, "--resume"]:
        head.add_argument(option, default=None)
    known, _ = head.parse_known_args(argv)

    if known.resume:
        run_dir = Path(known.resume)
        if not (run_dir / "config.json").is_file():
            raise DemaError(f"--resume {run_dir}: no config.json there; is it a run directory made by `dema train`?")
        saved = TrainConfig.load(run_dir / "config.json")
        _check_resume_choosers(known, saved)
        # The run lives where it is, whatever runs_dir/run_name said when it was made.
        saved = dataclasses.replace(saved, runs_dir=str(run_dir.parent), run_name=run_dir.name)
        default = saved
    else:
        chosen = {option: getattr(known, option[2:]) for option in _CHOOSERS}
        default = preset_config(*(chosen[o] if chosen[o] is not None else d for o, d in _CHOOSERS.items()))
    parser, dests = build_parser(default)
    config = replace_fields(default, dataclass_values(parser.parse_args(argv), dests))
    if known.resume:
        _check_resume_changes(default, config)
    return config, bool(known.resume)


def _check_resume_choosers(known: argparse.Namespace, saved: TrainConfig) -> None:
    """--model, --dataset, --protocol and --preset choose a new run's defaults; with --resume they
    may only repeat the run's own (anything else would be ignored, so it is refused)."""
    own = {"--model": saved.model_name, "--dataset": saved.data.dataset, "--protocol": saved.protocol,
           "--preset": saved.preset}
    for option, value in own.items():
        given = getattr(known, option[2:])
        if given is None or given == value:
            continue
        if option == "--dataset" and Path(given).exists() and Path(value).exists() and Path(given).samefile(value):
            continue  # the same file by another path
        raise ConfigError(f"--resume {known.resume}: the run was made with {option} {value}, not {given}; a resumed run "
                          f"keeps its own (drop {option}), or start a new run for {given}")


def _check_resume_changes(saved: TrainConfig, new: TrainConfig) -> None:
    before, after = saved.to_dict(), new.to_dict()
    changed = sorted(k for k in before if before[k] != after[k] and k not in _RESUMABLE_CHANGES)
    if changed:
        raise ConfigError(f"--resume: {changed} cannot change when resuming (the continuation would not be exact); "
                          "start a new run instead")


def main(argv: list[str]) -> int:
    from dema.train.pipeline import train_and_evaluate

    config, resume = parse(argv)
    result, report = train_and_evaluate(config, resume)
    if report is not None:
        print(summary_line(report) + f" -> {RunDir(result.run_dir).eval_report}")
    if result.step == config.schedule.updates:
        print(f"next: `dema eval {result.run_dir}` scores it again (other --targets, --episodes); "
              f"`dema train --resume {result.run_dir} --schedule.updates N` trains it on exactly")
    return 0


def summary_line(report: dict) -> str:
    from dema.evaluation.evaluate import cut_note

    cut = cut_note(report.get("episodes_cut"), report["episodes"], report.get("cut_at_steps"))
    line = (f"final: normalised {report['normalized_mean']:.1f} +- {report['normalized_std']:.1f} "
            f"(return {report['return_mean']:.1f} +- {report['return_std']:.1f}, {report['episodes']} episodes, "
            f"target {report['targets'][0]:g}{cut})")
    best = report.get("best_during_training")
    if best:
        line += f"; best during training {best['normalized_mean']:.1f} at step {best['step']}"
    return line


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
