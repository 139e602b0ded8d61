"""The real SAC replay buffers in ../shared/data/d4rl-style/ against the table in their README.

Skipped where the shared folder is absent (a fresh clone); `DEMA_SHARED` points elsewhere.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from dema.cli import main as dema_main
from dema.data.load import load_dataset
from dema.data.trajectories import TrajectoryDataset

SHARED = Path(os.environ.get("DEMA_SHARED", Path(__file__).resolve().parents[2] / ".." / "shared"))
FOLDER = SHARED / "data" / "d4rl-style"
pytestmark = pytest.mark.skipif(not (FOLDER / "README.md").exists(), reason=f"no shared data at {FOLDER} (set DEMA_SHARED)")


def readme_rows() -> list[dict]:
    """| file | env | transitions | episodes | return min / mean / max | ... rows of the README."""
    rows = []
    for line in (FOLDER / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0].endswith(".hdf5"):
            number = lambda s: float(s.replace(",", ""))  # noqa: E731
            rows.append({
                "file": cells[0],
                "env": cells[1],
                "transitions": int(number(cells[2])),
                "episodes": int(number(cells[3])),
                "returns": [number(x) for x in re.findall(r"-?[\d,]+(?:\.\d+)?", cells[4])],
            })
    return rows


ROWS = readme_rows() if (FOLDER / "README.md").exists() else []


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_matches_readme_table(row, capsys):
    ds = load_dataset(FOLDER / row["file"])
    assert ds.metadata["env_id"] == row["env"]
    assert len(ds) == row["transitions"]
    returns = ds.episode_returns()
    assert len(returns) == row["episodes"]
    low, mean, high = row["returns"]  # the README rounds to whole numbers
    assert abs(returns.min() - low) <= 1 and abs(returns.mean() - mean) <= 1 and abs(returns.max() - high) <= 1
    # the CLI reports the same numbers
    assert dema_main(["data", str(FOLDER / row["file"]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["transitions"], info["episodes"]) == (row["transitions"], row["episodes"])
    assert info["return_max"] == pytest.approx(returns.max())


def test_readme_table_was_found():
    assert len(ROWS) == 3


def test_windows_from_real_data():
    data = TrajectoryDataset(load_dataset(FOLDER / "hopper-sac-replay.hdf5", env="hopper"), context_len=20, seed=0)
    batch = data.sample(64)
    assert batch.states.shape == (64, 20, 11) and batch.actions.shape == (64, 20, 3)
    assert batch.mask[:, -1].all()  # left padding: the last position is always a real step
    assert (batch.returns_to_go[batch.mask] >= -0.1).all()  # hopper rewards are nearly all positive
