"""The `dema` command: a thin dispatcher to one module per subcommand.

Each subcommand lives in its own module with a `main(argv) -> int`, so the command modules stay
independent and import only what they need (`dema params` does not import gymnasium).
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
import warnings

from dema.errors import DemaError

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "params": ("dema.commands.params", "parameter counts per model and preset"),
    "data": ("dema.data.cli", "summarise a dataset file, folder or id"),
    "collect": ("dema.data.collect.cli", "collect a D4RL-style dataset in a simulator"),
    "train": ("dema.train.cli", "train a model on an offline dataset"),
    "eval": ("dema.evaluation.cli", "evaluate a trained run in the simulator"),
    "export": ("dema.commands.export", "write a trained policy as an ONNX model, for other runtimes"),
    "demo": ("dema.commands.demo", "the main job: DeMa vs DT on the bundled dataset"),
    "bench": ("dema.bench.cli", "compute-cost benchmarks"),
    "attention": ("dema.commands.attention", "plot the hidden attention of a trained model"),
    "surgery": ("dema.commands.surgery", "score DeMa with a layer's hidden attention zeroed, randomised or swapped"),
    "decay": ("dema.commands.decay", "fit the decay of the hidden attention with distance (exponential, power law)"),
    "analysis": ("dema.commands.analysis", "the tables of docs/ANALYSES.md from `dema surgery` and `dema decay` outputs"),
    "report": ("dema.experiments.report_cli", "tables, plots and verdicts from run records"),
    "sweep": ("dema.experiments.sweep_cli", "run an experiment grid (train + evaluate every cell) on Ray"),
    "continue": ("dema.experiments.continue_cli", "train finished runs on past their last update and compare"),
}


def _usage() -> str:
    lines = ["usage: dema COMMAND [options]   (dema COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as users of a command read them: what and why, not the source line that warned."""
    return f"dema: warning ({category.__name__}): {message}\n"


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = _one_line_warning
    try:
        status = _run(argv)
        sys.stdout.flush()  # a short output sits in the buffer: a reader that left shows up here
        return status
    except BrokenPipeError:
        # the reader of the output left (`dema params | head`): stop quietly, as Unix tools do
        _silence_stdout()
        return 128 + 13  # what a shell reports for a process that SIGPIPE ended


def _run(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"dema: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(COMMANDS[name][0])
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("dema"):
            print(f"dema: the command {name!r} is not available in this version", file=sys.stderr)
            return 2
        raise
    try:
        return int(module.main(rest) or 0)
    except DemaError as exc:
        print(f"dema {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dema {name}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        # a full disk, a quota or a read-only or forbidden folder met by a write no command wrapped
        # itself: the user's to fix, so one line (what finished is on disk, written atomically)
        if exc.errno not in _WRITE_ERRORS:
            raise
        print(f"dema {name}: error: {_write_error_line(exc)}", file=sys.stderr)
        return 2


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush at exit does not meet the
    closed pipe again and print "Exception ignored ... BrokenPipeError"."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor behind stdout (captured in a test): nothing to do
        pass


# errno values of a write the user's machine refused, as opposed to a bug of dema's
_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _write_error_line(exc: OSError) -> str:
    from dema.files import write_failed

    target = exc.filename2 or exc.filename  # os.replace(tmp, path) names the destination second
    if target is None:
        return (f"{exc.strerror or exc}. Free some space (or fix the folder's permissions) and run the same "
                "command again: what finished is kept")
    return str(write_failed(target, exc, "What finished before is kept."))


if __name__ == "__main__":
    sys.exit(main())
