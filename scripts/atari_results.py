"""The Atari table of docs/RESULTS.md from the run directories of scripts/atari_cpu.sh.

    .venv/bin/python scripts/atari_results.py [RUNS_DIR] [DATA_DIR]     # defaults runs/atari datasets/atari

One row per finished run (eval.json): the final checkpoint's gamer-normalised score and return per
target, the best checkpoint's, the best evaluation during training, ms per update and the time
spent; then the datasets' own return statistics (dema_collect.json) on the same scale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dema.envs import env_spec


def main(argv: list[str]) -> int:
    runs = Path(argv[0] if argv else "runs/atari")
    data = Path(argv[1] if len(argv) > 1 else "datasets/atari")
    print("| game | model | seed | target | final: normalised (return) | best ckpt: normalised | best during training "
          "| ms/update | train min | total min |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for path in sorted(runs.glob("*/eval.json")):
        report = json.loads(path.read_text())
        game = Path(report["dataset"]).name
        best = report.get("best_checkpoint") or {}
        best_targets = {t["target"]: t for t in best.get("per_target", [])}
        during = report.get("best_during_training") or {}
        training = report.get("training") or {}
        ms = 1000 * training.get("train_seconds", 0) / max(training.get("step", 0), 1)
        for t in report["per_target"]:
            b = best_targets.get(t["target"])
            print(f"| {game} | {report['model']} | {report['train_seed']} | {t['target']:g} | "
                  f"{t['normalized_mean']:.1f} ± {t['normalized_std']:.1f} ({t['return_mean']:.1f}) | "
                  f"{'-' if b is None else format(b['normalized_mean'], '.1f')} | "
                  f"{'-' if not during else format(during['normalized_mean'], '.1f') + ' @ ' + str(during['step'])} | "
                  f"{ms:.0f} | {training.get('train_seconds', 0) / 60:.1f} | {(training.get('wall_seconds') or 0) / 60:.1f} |")
    print()
    print("| dataset | transitions | episodes | return mean ± std | min / max | gamer-normalised mean (min / max) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for path in sorted(data.glob("*/dema_collect.json")):
        meta = json.loads(path.read_text())
        spec = env_spec(meta["game"])
        print(f"| {meta['game']} ({meta['recipe']}) | {meta['transitions']:,} | {meta['episodes']} | "
              f"{meta['return_mean']:.1f} ± {meta['return_std']:.1f} | {meta['return_min']:.0f} / {meta['return_max']:.0f} | "
              f"{spec.normalize(meta['return_mean']):.1f} ({spec.normalize(meta['return_min']):.1f} / "
              f"{spec.normalize(meta['return_max']):.1f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
