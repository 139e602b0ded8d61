"""Regenerate the dataset tables in docs/DATASETS.md from the files' own metadata and arrays.

Reads every `*.hdf5` in the given folders (default: datasets/ and src/dema/bundled/), recomputes
the episode return statistics from the arrays (episodes end at terminals or timeouts), takes the
collection settings and speed from the `metadata` group, and replaces the text between the
`<!-- datasets-table:begin -->` and `<!-- datasets-table:end -->` markers in docs/DATASETS.md
(or prints the table with --print).

    .venv/bin/python scripts/datasets_table.py            # update docs/DATASETS.md
    .venv/bin/python scripts/datasets_table.py --print    # only print
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dema.data.episodes import episode_returns, return_stats  # noqa: E402

BEGIN, END = "<!-- datasets-table:begin -->", "<!-- datasets-table:end -->"


def _attr(meta: dict, key: str, default=None):
    value = meta.get(key, default)
    return value.decode() if isinstance(value, bytes) else value


def describe(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        rewards = f["rewards"][()]
        terminals, timeouts = f["terminals"][()], f["timeouts"][()]
        meta = dict(f["metadata"].attrs) if "metadata" in f else {}
    returns = episode_returns(rewards, terminals, timeouts)
    stats = return_stats(returns)
    lo, hi = _attr(meta, "ref_min_score"), _attr(meta, "ref_max_score")
    norm = 100 * (stats["return_mean"] - lo) / (hi - lo) if lo is not None and hi is not None else float("nan")
    return {
        "file": path.name,
        "env": _attr(meta, "env_id", "?"),
        "recipe": _attr(meta, "recipe", "?"),
        "policy": _attr(meta, "policy", "?"),
        "transitions": len(rewards),
        "episodes": len(returns),
        "terminal": int(np.asarray(terminals).sum()),
        **{key: stats[f"return_{key}"] for key in ("mean", "std", "min", "max")},
        "norm": norm,
        "num_envs": _attr(meta, "num_envs"),
        "sps": _attr(meta, "steps_per_second"),
        "seconds": _attr(meta, "collect_seconds"),
        "refs": (lo, hi),
        "mb": path.stat().st_size / 1e6,
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| file | env | recipe | transitions | episodes (terminal) | return mean ± std | min / max | D4RL-normalised mean | size MB | collected at (steps/s, envs) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        speed = f"{r['sps']:,.0f} ({r['num_envs']})" if r["sps"] else "-"
        lines.append(
            f"| {r['file']} | {r['env']} | {r['recipe']} | {r['transitions']:,} | {r['episodes']:,} ({r['terminal']:,}) | "
            f"{r['mean']:.1f} ± {r['std']:.1f} | {r['min']:.1f} / {r['max']:.1f} | {r['norm']:.1f} | {r['mb']:.1f} | {speed} |"
        )
    refs = {r["env"]: r["refs"] for r in rows if r["env"].startswith("PointMaze")}
    if refs:
        lines += ["", "maze2d reference scores computed here (random / noiseless controller, mean return over the "
                  "episodes named in each file's `ref_scores_protocol`):", "",
                  "| env | random (ref_min_score) | controller (ref_max_score) |", "| --- | --- | --- |"]
        lines += [f"| {env} | {lo:.2f} | {hi:.2f} |" for env, (lo, hi) in sorted(refs.items())]
    lines += ["", "Policies per file (from the `policy` metadata):", ""]
    lines += [f"- {r['file']}: {r['policy']}" for r in rows]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description="regenerate the dataset table of docs/DATASETS.md")
    p.add_argument("folders", nargs="*", type=Path, default=[ROOT / "datasets", ROOT / "src/dema/bundled"])
    p.add_argument("--doc", type=Path, default=ROOT / "docs/DATASETS.md")
    p.add_argument("--print", action="store_true", help="print the table instead of updating the doc")
    args = p.parse_args()
    order = {"medium": 0, "medium-replay": 1, "medium-expert": 2}
    files = [f for d in args.folders if d.is_dir() for f in sorted(d.glob("*.hdf5"))]
    rows = [describe(f) for f in files]
    rows.sort(key=lambda r: (r["env"].startswith("PointMaze"), r["env"], order.get(r["recipe"], 9), r["file"]))
    text = table(rows)
    if args.print:
        print(text)
        return 0
    doc = args.doc.read_text()
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{args.doc} lacks the markers {BEGIN} ... {END}")
    doc = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: f"{BEGIN}\n{text}\n{END}", doc, flags=re.S)
    args.doc.write_text(doc)
    print(f"updated {args.doc} ({len(rows)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
