"""The dataset tables of docs/DATASETS.md, from the files' own arrays and metadata (`dema data --table`).

Every `*.hdf5` of the given folders (default: ./datasets and the datasets bundled with dema): the
episode return statistics recomputed from the arrays (episodes end at terminals or timeouts), the
collection settings and speed from the file's `metadata` group; with `--page`, written between the
`<!-- datasets-table:begin -->` and `<!-- datasets-table:end -->` lines of the page.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from dema.data.episodes import episode_returns, return_stats
from dema.data.load import BUNDLED
from dema.errors import DataError

BEGIN, END = "<!-- datasets-table:begin -->", "<!-- datasets-table:end -->"
DEFAULT_FOLDERS = (Path("datasets"), BUNDLED)
_RECIPE_ORDER = {"medium": 0, "medium-replay": 1, "medium-expert": 2}


def _attr(meta: dict, key: str, default=None):
    value = meta.get(key, default)
    return value.decode() if isinstance(value, bytes) else value


def describe(path: Path) -> dict:
    """One row of the table: the file's sizes, episode returns, metadata and size on disk."""
    try:
        with h5py.File(path, "r") as f:
            rewards = f["rewards"][()]
            terminals, timeouts = f["terminals"][()], f["timeouts"][()]
            meta = dict(f["metadata"].attrs) if "metadata" in f else {}
    except (OSError, KeyError) as exc:
        raise DataError(f"{path}: not a readable D4RL hdf5 file ({type(exc).__name__}: {exc}); move it out of the "
                        "folder or collect it again") from None
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
    """The Markdown of `rows`: the datasets, maze2d's reference scores, the policy of each file."""
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


def dataset_table(folders) -> tuple[str, int]:
    """(the table of every `*.hdf5` in `folders`, how many files): MuJoCo by environment and recipe,
    then maze2d."""
    files = [f for d in map(Path, folders) if d.is_dir() for f in sorted(d.glob("*.hdf5"))]
    rows = [describe(f) for f in files]
    rows.sort(key=lambda r: (r["env"].startswith("PointMaze"), r["env"], _RECIPE_ORDER.get(r["recipe"], 9), r["file"]))
    return table(rows), len(rows)
