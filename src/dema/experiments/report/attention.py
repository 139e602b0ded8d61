"""The paper's claims about the hidden attention (its claim 3), from the analyses' records, judged by
the report's one rule.

scripts/analysis_runs.sh keeps what `dema surgery` and `dema decay` measured on a trained cell as
records: RESULTS/analyses/<dataset>_<model>_<protocol>_s<seed>/surgery.json and decay.json (the window
view). Each Transformer-like DeMa cell gives one paired difference per claim, and the differences go
through the same hierarchical bootstrap and the same thresholds as the runs' claims:

- "what matters": the intact policy's normalised score minus the score with the hidden attention
  zeroed in every layer (the same evaluation episodes); the paper: removing it hurts a lot.
- "decays exponentially": how much better an exponential fits the attention's decay with distance
  than a power law, in R² of the log-scale fits over the whole window (both fits have two
  parameters and read the same points, so R² orders them as AIC does), in percentage points and
  averaged over the cell's layers.

Read `analysis_records` (the records under the report's paths), then `attention_claims`.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from dema.experiments.records import ANALYSES_FOLDER
from dema.experiments.report.claims import _judge, _would_change

CELL = re.compile(r"^(?P<dataset>[^_]+)_(?P<model>[^_]+)_(?P<protocol>[^_]+)_s(?P<seed>\d+)$")
WHAT_MATTERS = "The hidden attention is what matters: DeMa intact beats DeMa with it zeroed in every layer"
DECAYS_EXPONENTIALLY = ("The hidden attention decays exponentially with distance: an exponential fits it better "
                        "than a power law (window view)")
_RECORD_FIX = "write it again with scripts/analysis_runs.sh (delete the file first)"


def analysis_records(paths: list[str | Path]) -> tuple[list[dict], list[str]]:
    """The analyses' records under each folder of `paths` (FOLDER/analyses/<cell>/): one dict per
    cell with its dataset, model, protocol, seed and the `surgery` and `decay` JSON it has; and the
    problems, one line per file that cannot be read as what its command writes."""
    cells, problems = [], []
    for folder in sorted({Path(p) / ANALYSES_FOLDER for p in paths}):
        if folder.is_dir():
            for cell_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
                cell = _read_cell(cell_dir, problems)
                if cell is not None:
                    cells.append(cell)
    return cells, problems


def _read_cell(cell_dir: Path, problems: list[str]) -> dict | None:
    """One cell's records, or None (and a problem) when the folder's name is not a cell's."""
    match = CELL.match(cell_dir.name)
    if match is None:
        problems.append(f"{cell_dir}: not named <dataset>_<model>_<protocol>_s<seed>, so not an analysis "
                        "record folder; left out")
        return None
    cell = {**match.groupdict(), "seed": int(match["seed"]), "folder": str(cell_dir)}
    for key in ("surgery", "decay"):  # what `dema surgery` and `dema decay` (window view) wrote
        path = cell_dir / f"{key}.json"
        if not path.is_file():
            continue
        try:
            cell[key] = _read(key, path)
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            problems.append(f"{path}: not the JSON `dema {key}` writes ({type(exc).__name__}: {exc}); {_RECORD_FIX}")
    return cell


def _read(key: str, path: Path) -> dict:
    """The JSON at `path`, once the fields the claims use are there (KeyError, TypeError or ValueError
    when one is missing or not a number)."""
    result = json.loads(path.read_text(encoding="utf-8"))
    if key == "surgery":
        float(result["intact"])
        float(_zero_all(result)["normalized_mean"])
    elif any("fit_all" not in layer for layer in result["layers"]):
        raise KeyError("fit_all")
    return result


def _zero_all(surgery: dict) -> dict:
    """The manipulation that zeroes the hidden attention in every layer (KeyError when not measured)."""
    for m in surgery["manipulations"]:
        if m["kind"] == "zero" and str(m["layer"]) == "all":
            return m
    raise KeyError("no manipulation 'zero' of every layer ('all')")


def attention_claims(cells: list[dict]) -> list[dict]:
    """The two claims, each judged on the Transformer-like DeMa cells (model `dema`) that measured it."""
    dema = [c for c in cells if c["model"] == "dema"]
    out = [_claim(WHAT_MATTERS, "dema intact", "dema with its hidden attention zeroed in every layer",
                  [c for c in dema if "surgery" in c], _matters_difference, _surgery_detail,
                  "no `dema surgery` records (results/analyses/<cell>/surgery.json: scripts/analysis_runs.sh)",
                  "normalised score of the final weights (the surgery's episodes)"),
           _claim(DECAYS_EXPONENTIALLY, "R² of the exponential fit (log scale, %)", "R² of the power-law fit",
                  [c for c in dema if "decay" in c and _fits(c["decay"])], _decay_difference, _decay_detail,
                  "no `dema decay` records (results/analyses/<cell>/decay.json: scripts/analysis_runs.sh)",
                  "R² of the log-scale fits in percentage points, mean over layers")]
    for claim in out:
        claim["fragile"] = False  # no sensitivity reads: an analysis scores one set of weights once
        claim["evidence"]["would_change"] = (
            _would_change(claim) if claim["verdict"] != "no data" else
            "records of the medium datasets' DeMa cells: scripts/analysis_runs.sh DATASET SEED (queued in "
            "scripts/grids_background.sh)")
    return out


def _claim(text, a_desc, b_desc, cells, difference, detail, missing, unit) -> dict:
    if not cells:
        return {"claim": text, "verdict": "no data", "evidence": {"a": a_desc, "b": b_desc, "pairs": 0,
                                                                  "missing": missing}}
    diffs = [difference(c) for c in cells]
    labels = [(c["protocol"], c["dataset"], c["seed"]) for c in cells]
    return _judge(text, diffs, labels, "beats", False, {"a": a_desc, "b": b_desc, "detail": detail(cells),
                                                         "unit": unit, "source": ANALYSES_FOLDER})


def _matters_difference(cell: dict) -> float:
    return cell["surgery"]["intact"] - _zero_all(cell["surgery"])["normalized_mean"]


def _fits(decay: dict) -> list[dict]:
    """The whole-window fits of the layers that have one (too few points: none)."""
    return [layer["fit_all"] for layer in decay["layers"] if layer.get("fit_all")]


def _decay_difference(cell: dict) -> float:
    return 100 * statistics.mean(f["exponential"]["r2_log"] - f["power_law"]["r2_log"] for f in _fits(cell["decay"]))


def _surgery_detail(cells: list[dict]) -> str:
    """The other manipulations of every layer beside the one the claim reads, as mean changes."""
    changes: dict[str, list[float]] = {}
    for c in cells:
        for m in c["surgery"]["manipulations"]:
            if str(m["layer"]) == "all" and m["kind"] != "zero":
                name = "cyclic swap" if m["kind"] == "swap" else f"{m['kind']} (all layers)"
                changes.setdefault(name, []).append(m["normalized_mean"] - c["surgery"]["intact"])
    parts = [f"{name} {statistics.mean(v):+.1f}" for name, v in sorted(changes.items())]
    return "mean change of the score with the other manipulations: " + ", ".join(parts) if parts else ""


def _decay_detail(cells: list[dict]) -> str:
    fits = [f for c in cells for f in _fits(c["decay"])]
    power = sum(f["better"] == "power law" for f in fits)
    return (f"AIC favours the power law in {power} of {len(fits)} layers and the exponential in "
            f"{len(fits) - power}; differences in percentage points of R²")
