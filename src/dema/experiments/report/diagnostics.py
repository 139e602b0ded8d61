"""docs/RESULTS.md's Pong diagnostics from their records (`dema report --pong-diagnostics`).

Is a Pong score at random play a target out of the data's range, or a policy that never learned the
game? The seed-0 DeMa and DT cells of the `atari` grid are scored at three return targets
(scripts/pong_diagnostics.sh: `dema eval` of copies of the cells); each evaluation is kept as
RESULTS/diagnostics/pong/<run>.json (the run's eval.json), and the table comes from those records
alone: raw returns, mean ± std over the episodes, per target.
"""

from __future__ import annotations

import json
from pathlib import Path

from dema.errors import DemaError
from dema.models.registry import Study, models_in

PONG_TARGETS = ("20", "0", "-10")
PONG_MODELS = models_in(Study.HEADLINE)  # DeMa and DT (the model registry)


def pong_record(results: Path, model: str) -> Path:
    """Where the diagnostics of `model`'s seed-0 Pong cell are kept under the results folder."""
    return Path(results) / "diagnostics" / "pong" / f"Pong_{model}_cpu-atari_s0.json"


def pong_table(results: Path) -> list[str]:
    """One row per model, one column per target; a model without a record is "not yet run"."""
    lines = ["| model | " + " | ".join(f"target {t}" for t in PONG_TARGETS) + " |",
             "| --- |" + " --- |" * len(PONG_TARGETS)]
    for model in PONG_MODELS:
        path = pong_record(results, model)
        if not path.is_file():
            lines.append(f"| {model} |" + " not yet run |" * len(PONG_TARGETS))
            continue
        try:
            by_target = {float(t["target"]): t for t in json.loads(path.read_text())["per_target"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DemaError(f"{path}: not an evaluation record (an eval.json) ({type(exc).__name__}: {exc}); "
                            "delete it and run scripts/pong_diagnostics.sh again") from None
        cells = [by_target.get(float(t)) for t in PONG_TARGETS]
        lines.append(f"| {model} | " + " | ".join(
            "-" if c is None else f"{c['return_mean']:.1f} ± {c['return_std']:.1f}" for c in cells) + " |")
    return lines
