"""CONTRIBUTING.md's recipe "Adding an experiment grid", followed once: a YAML file dropped into a
copy of the package's grids/ folder is a packaged grid, named by its file stem, checked before any
cell runs, whose records go to results/<grid>/."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the recipes' helpers
from recipe_helpers import copy_package, run_copy  # noqa: E402

GRID = """name: recipe-check
description: CONTRIBUTING.md's grid recipe, followed by a test.
datasets: [hopper-medium-replay-small]
models: [dema, dt]
seeds: [0]
protocol: demo
overrides: {schedule.updates: 2, eval.episodes: 1}
sweep: {model.context_len: [8, 20]}
"""

CHECKS = """
import contextlib, io, sys
from pathlib import Path
from dema.cli import main
from dema.experiments.grid import available_grids, load_grid

grid_file, runs = Path(sys.argv[1]), sys.argv[2]
grid = load_grid("recipe-check")
assert "recipe-check" in available_grids() and grid.packaged and not grid.smoke
assert grid.default_results_dir(Path(runs)) == Path("results")
assert len(grid.cells()) == 4 and grid.config(grid.cells()[0], runs).schedule.updates == 2
assert main(["sweep", "recipe-check", "--dry-run", "--runs-dir", runs]) == 0

# a mistake in the file is one line naming it, before any cell runs
grid_file.write_text(grid_file.read_text().replace("models: [dema, dt]", "models: [dema, dxlstm]"))
err = io.StringIO()
with contextlib.redirect_stderr(err):
    assert main(["sweep", "recipe-check", "--dry-run", "--runs-dir", runs]) == 2
assert "unknown model 'dxlstm'" in err.getvalue() and len(err.getvalue().splitlines()) == 1, err.getvalue()
"""


def test_a_grid_is_one_yaml_file_in_the_packaged_grids(tmp_path):
    package = copy_package(tmp_path)
    grid_file = package / "experiments" / "grids" / "recipe-check.yaml"
    grid_file.write_text(GRID)

    proc = run_copy(package, "-c", CHECKS, str(grid_file), str(tmp_path / "runs"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    cells = [line.split(":")[0] for line in proc.stdout.splitlines() if line.startswith("hopper-medium-replay-small_")]
    assert sorted(cells) == [f"hopper-medium-replay-small_{model}_demo_s0_context_len-{k}"
                             for model in ("dema", "dt") for k in (20, 8)]
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing
