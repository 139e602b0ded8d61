"""docs/RESULTS.md's Pong diagnostics as records (issue 24): is a Pong score at random play a target
out of the data's range, or a policy that never learned the game? The seed-0 DeMa and DT cells of
the `atari` grid, trained again where their run directories are not on this machine (their records
in results/ stay as they are), are scored at three return targets; each evaluation is kept as
RESULTS/diagnostics/pong/<run>.json, and the table is printed from those records alone.

    python scripts/pong_diagnostics.py run [--results results]     # train (resumable) and score
    python scripts/pong_diagnostics.py table [--results results]   # the Markdown table from the records
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

TARGETS = ("20", "0", "-10")
MODELS = ("dema", "dt")
DEMA = [sys.executable, "-m", "dema.cli"]


def run(results: Path) -> None:
    subprocess.run([*DEMA, "sweep", "atari", "--models", *MODELS, "--seeds", "0", "--datasets", "atari/Pong",
                    "--executor", "local", "--workers", "1", "--runs-dir", "runs/pong-source", "--results-dir", ""],
                   check=True)
    out = results / "diagnostics" / "pong"
    out.mkdir(parents=True, exist_ok=True)
    for model in MODELS:
        name = f"Pong_{model}_cpu-atari_s0"
        if (out / f"{name}.json").is_file():
            continue
        copy = Path("runs/pong-diagnostics") / name  # a copy: the cell's own eval.json stays the grid's
        if not copy.exists():
            shutil.copytree(Path("runs/pong-source") / name, copy)
        subprocess.run([*DEMA, "eval", str(copy), "--checkpoint", "final", "--episodes", "5", "--targets", *TARGETS,
                        "--max-episode-steps", "10000"], check=True)
        shutil.copy(copy / "eval.json", out / f"{name}.json")


def table(results: Path) -> list[str]:
    lines = ["| model | " + " | ".join(f"target {t}" for t in TARGETS) + " |",
             "| --- |" + " --- |" * len(TARGETS)]
    for model in MODELS:
        path = results / "diagnostics" / "pong" / f"Pong_{model}_cpu-atari_s0.json"
        if not path.is_file():
            lines.append(f"| {model} |" + " not yet run |" * len(TARGETS))
            continue
        by_target = {float(t["target"]): t for t in json.loads(path.read_text())["per_target"]}
        cells = [by_target.get(float(t)) for t in TARGETS]
        lines.append(f"| {model} | " + " | ".join(
            "-" if c is None else f"{c['return_mean']:.1f} ± {c['return_std']:.1f}" for c in cells) + " |")
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("run", "table"))
    parser.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.results)
    print("\n".join(table(args.results)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
