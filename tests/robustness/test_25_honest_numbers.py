"""Issue 25, class 9: honest numbers. An evaluation whose episodes were cut by --max-episode-steps
(below the environment's own limit) says so next to its score, in eval.json and in the printed
line: an Atari game cut at 10000 steps, or Hopper at 10, is not the score of the whole game."""

from __future__ import annotations

import json

import pytest

from corpus import copy_run, dema


def _check_cut(run, out: str, limit: int, episodes: int) -> None:
    report = json.loads((run / "eval.json").read_text())
    assert report["cut_at_steps"] == limit and report["episodes_cut"] == episodes, report
    assert all(t["episodes_cut"] == episodes for t in report["per_target"])
    scored = [line for line in out.splitlines() if "normalised" in line and "target" in line]
    assert scored and all(f"{episodes} of {episodes} cut at {limit} steps" in line for line in scored), out


def test_a_cut_mujoco_evaluation_says_so(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    code, out, err = dema(capsys, "eval", run, "--episodes", "2", "--max-episode-steps", "5")
    assert code == 0, err
    _check_cut(run, out, 5, 2)


def test_an_uncut_evaluation_says_nothing(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    code, out, err = dema(capsys, "eval", run, "--episodes", "1", "--max-episode-steps", "0")
    assert code == 0, err
    report = json.loads((run / "eval.json").read_text())
    assert report["cut_at_steps"] is None and report["episodes_cut"] == 0
    assert " cut at " not in out


@pytest.fixture(scope="module")
def breakout_run(tmp_path_factory):
    """A tiny DT trained on a few hundred frames of scripted Breakout (ale-py is the atari extra)."""
    pytest.importorskip("ale_py")
    import contextlib
    import io

    from dema.data.collect.atari.scripted import collect_scripted
    from dema.cli import main

    out = tmp_path_factory.mktemp("atari")
    folder, _ = collect_scripted("Breakout", out, 300, seed=0, levels=(0.1, 1.0), capacity=120,
                                 max_episode_steps=100, log=lambda *a: None)
    argv = ["train", "--model", "dt", "--dataset", str(folder), "--runs-dir", str(out / "runs"), "--run-name", "dt",
            "--model.n-layer", "1", "--model.embed-dim", "16", "--model.n-head", "2", "--model.context-len", "4",
            "--model.max-ep-len", "128", "--optim.batch-size", "2", "--schedule.updates", "2",
            "--schedule.eval-every", "0", "--eval.at-end", "False", "--progress", "False", "--threads", "1"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(argv) == 0, err.getvalue()
    return out / "runs" / "dt"


def test_a_cut_atari_evaluation_says_so(breakout_run, capsys):
    # Breakout does not end in 10 steps (the ball is not even launched): every episode is cut
    code, out, err = dema(capsys, "eval", breakout_run, "--episodes", "1", "--max-episode-steps", "10",
                          "--checkpoint", "final")
    assert code == 0, err
    _check_cut(breakout_run, out, 10, 1)


def _free(monkeypatch, free: int) -> None:
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: type("Usage", (), {"free": free})())


def test_collect_writes_a_small_dataset_where_it_fits(tmp_path, capsys, monkeypatch):
    """300 Hopper steps need about 30 KiB: 4 MiB free is plenty (a fixed 16 MiB margin refused it)."""
    _free(monkeypatch, 4 * 2**20)
    out = tmp_path / "hopper-random.hdf5"
    code, _, err = dema(capsys, "collect", "hopper", "random", "--steps", "300", "--out", out, "--no-progress")
    assert code == 0, err
    assert out.is_file() and "warning" not in err


def test_the_free_space_check_grows_with_the_data(tmp_path, monkeypatch):
    """HDF5's chunk indexes and per-chunk framing grow with the data: a 2 GiB write is refused with only
    the fixed 16 MiB beyond it free, a 2 MiB write is not refused with 3 MiB free."""
    from dema.data.collect.writer import check_space
    from dema.errors import DataError

    big = 2 * 2**30
    _free(monkeypatch, big + 17 * 2**20)
    with pytest.raises(DataError, match="MiB free there"):
        check_space(tmp_path / "big.hdf5", big)
    _free(monkeypatch, 3 * 2**20)
    check_space(tmp_path / "small.hdf5", 2 * 2**20)
