"""maze2d trains and scores: a collected PointMaze dataset through `dema train` and `dema eval`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dema.envs import ENVS


def _dema(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dema.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.mark.slow
def test_maze2d_collect_train_and_eval_give_a_normalised_score(tmp_path):
    pytest.importorskip("gymnasium_robotics", reason='maze2d needs the maze extra: pip install -e ".[maze]"')
    data = tmp_path / "maze2d-umaze-v3.hdf5"
    out = _dema("collect", "maze2d-umaze", "controller", "--steps", "3000", "--num-envs", "2", "--ref-episodes", "2",
                "--out", data, "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    out = _dema("train", "--model", "dema", "--dataset", data, "--protocol", "demo", "--threads", "1",
                "--progress", "False", "--schedule.updates", "6", "--schedule.eval-every", "0",
                "--schedule.log-every", "3", "--optim.batch-size", "4", "--eval.episodes", "1", "--eval.at-end", "False",
                cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run = tmp_path / "runs" / "maze2d-umaze-v3_dema_demo_s0"
    config = json.loads((run / "config.json").read_text())
    assert config["preset"] == "maze2d-umaze" and config["data"]["reward_scale"] == ENVS["maze2d-umaze"].reward_scale
    out = _dema("eval", run, "--episodes", "1", "--max-episode-steps", "40", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads((run / "eval.json").read_text())
    spec = ENVS["maze2d-umaze"]
    assert report["env"] == spec.gym_id
    assert report["normalized_mean"] == pytest.approx(spec.normalize(report["return_mean"]))
