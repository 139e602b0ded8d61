"""`dema data --table`: docs/DATASETS.md's tables from the files' own arrays and metadata."""

from __future__ import annotations

import numpy as np
import pytest
from data_factories import make_arrays, write_d4rl

from dema.cli import main as dema
from dema.data.tables import BEGIN, END

META = {"env_id": "Hopper-v5", "policy": "sac-Hopper stochastic x 12", "ref_min_score": -20.0,
        "ref_max_score": 3234.3, "num_envs": 4, "steps_per_second": 1234.5}


@pytest.fixture
def folder(tmp_path):
    data = tmp_path / "datasets"
    data.mkdir()
    # written out of order: the table sorts MuJoCo by environment and recipe, maze2d last
    write_d4rl(data / "maze2d-umaze-v3.hdf5", make_arrays((3, 3), obs_dim=4, act_dim=2, seed=2),
               {"env_id": "PointMaze_UMaze-v3", "recipe": "controller", "policy": "waypoints",
                "ref_min_score": 1.5, "ref_max_score": 8.25})
    write_d4rl(data / "hopper-medium-replay-v5.hdf5", make_arrays((4, 6)), {**META, "recipe": "medium-replay"})
    write_d4rl(data / "hopper-medium-v5.hdf5", make_arrays((5, 7, 4), seed=1), {**META, "recipe": "medium"})
    (data / "notes.txt").write_text("not a dataset")
    return data


def test_the_table_is_computed_from_the_arrays(folder, capsys):
    assert dema(["data", "--table", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| file | env | recipe | transitions | episodes (terminal) |")
    assert [line.split(" | ")[0] for line in lines[2:5]] == [
        "| hopper-medium-v5.hdf5", "| hopper-medium-replay-v5.hdf5", "| maze2d-umaze-v3.hdf5"]
    arrays = make_arrays((5, 7, 4), seed=1)
    returns = [arrays["rewards"][a:b].sum() for a, b in ((0, 5), (5, 12), (12, 16))]
    mean, std = float(np.mean(returns)), float(np.std(returns))
    norm = 100 * (mean + 20.0) / (3234.3 + 20.0)
    assert lines[2] == (f"| hopper-medium-v5.hdf5 | Hopper-v5 | medium | 16 | 3 (2) | {mean:.1f} ± {std:.1f} | "
                        f"{min(returns):.1f} / {max(returns):.1f} | {norm:.1f} | 0.0 | 1,234 (4) |")
    assert lines[4].endswith("| - |")  # no collection speed recorded
    assert "| PointMaze_UMaze-v3 | 1.50 | 8.25 |" in lines
    assert lines[-3:] == ["- hopper-medium-v5.hdf5: sac-Hopper stochastic x 12",
                          "- hopper-medium-replay-v5.hdf5: sac-Hopper stochastic x 12", "- maze2d-umaze-v3.hdf5: waypoints"]


def test_the_page_gets_the_table_between_its_markers(folder, tmp_path, capsys):
    assert dema(["data", "--table", str(folder)]) == 0
    table = capsys.readouterr().out
    page = tmp_path / "DATASETS.md"
    page.write_text(f"# Datasets\n\n{BEGIN}\nold\n{END}\n\nafter\n")
    assert dema(["data", "--table", str(folder), "--page", str(page)]) == 0
    assert capsys.readouterr().out == f"updated {page} (3 files)\n"
    assert page.read_text() == f"# Datasets\n\n{BEGIN}\n{table}{END}\n\nafter\n"


def test_bad_input_is_one_line_and_nothing_written(folder, tmp_path, capsys):
    page = tmp_path / "PLAIN.md"
    page.write_text("no markers\n")
    assert dema(["data", "--table", str(folder), "--page", str(page)]) == 2
    assert "lacks the lines <!-- datasets-table:begin -->" in capsys.readouterr().err
    assert page.read_text() == "no markers\n"
    assert dema(["data", "--table", str(folder), "--page", str(tmp_path / "missing.md")]) == 2
    assert "no such file" in capsys.readouterr().err
    (folder / "broken.hdf5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    assert dema(["data", "--table", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "broken.hdf5: not a readable D4RL hdf5 file" in err and len(err.splitlines()) == 1
    for argv in (["data", "--page", str(page)], ["data", "hopper-medium", "--table"], ["data"]):
        with pytest.raises(SystemExit) as stop:
            dema(argv)
        assert stop.value.code == 2
