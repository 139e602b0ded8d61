"""Issue 25, class 4: weights copied in from another run are refused, never scored as this run's.

Every weights file carries its run's id in its metadata (identity.json holds the run's own); a
model.safetensors or best.safetensors of another run of the same architecture loads without a
complaint, so without the id `dema eval` would write the other run's score into this eval.json."""

from __future__ import annotations

import shutil

import pytest

from corpus import copy_run, dema, one_error_line, snapshot, tiny_run


@pytest.mark.parametrize("name", ["model.safetensors", "best.safetensors"])
def test_eval_refuses_weights_of_another_run(finished_run, tiny_dataset, tmp_path, capsys, name):
    run = copy_run(finished_run, tmp_path / "run")
    other = tiny_run(capsys, tiny_dataset, tmp_path / "runs", "other", "--schedule.eval-every", "2", "--seed", "1")
    shutil.copy(other / name, run / name)
    before = snapshot(run)
    code, _, err = dema(capsys, "eval", run, "--episodes", "1")
    line = one_error_line(err)
    assert code == 2, err
    assert name in line and "another run" in line, line
    assert snapshot(run) == before  # eval.json keeps this run's own score


def test_eval_still_scores_the_runs_own_weights(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    code, out, err = dema(capsys, "eval", run, "--episodes", "1")
    assert code == 0, err
    assert "wrote" in out
