"""Issue 27: `dema eval --video` on bad input is one line, exit 2, and the run directory unchanged
(no videos/ folder, eval.json as it was), before any episode plays."""

from __future__ import annotations

import sys

import pytest

from corpus import copy_run, dema, one_error_line, snapshot
from dema.evaluation import rendering, video


def _refused(capsys, run, *args) -> str:
    before = snapshot(run)
    code, _, err = dema(capsys, "eval", run, "--episodes", "1", "--max-episode-steps", "5", *args)
    line = one_error_line(err)
    assert code == 2, err
    assert snapshot(run) == before and not (run / "videos").exists()
    return line


def test_unknown_video_format(finished_run, tmp_path, capsys):
    line = _refused(capsys, copy_run(finished_run, tmp_path / "run"), "--video", "1", "--video-format", "avi")
    assert "'avi'" in line and "mp4 or gif" in line, line


@pytest.mark.parametrize("count, says", [("-1", "--video must be >= 0"), ("3", "--video 3 asks for more episodes")])
def test_video_count_out_of_range(finished_run, tmp_path, capsys, count, says):
    line = _refused(capsys, copy_run(finished_run, tmp_path / "run"), "--video", count)
    assert says in line, line


def test_run_without_weights(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    (run / "model.safetensors").unlink()
    line = _refused(capsys, run, "--video", "1", "--checkpoint", "final")
    assert "model.safetensors" in line, line


def test_no_rendering_backend(finished_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(rendering, "_found", {})
    monkeypatch.setattr(rendering, "_probe", lambda backend: f"{backend} does not start")
    line = _refused(capsys, copy_run(finished_run, tmp_path / "run"), "--video", "1", "--video-format", "gif")
    assert "libegl1" in line and "libosmesa6" in line, line


def test_a_failing_backend_the_user_chose(finished_run, tmp_path, capsys, monkeypatch):
    """The real probe (a child process) of a MUJOCO_GL that cannot work."""
    monkeypatch.setattr(rendering, "_found", {})
    monkeypatch.setenv("MUJOCO_GL", "no-such-backend")
    line = _refused(capsys, copy_run(finished_run, tmp_path / "run"), "--video", "1", "--video-format", "gif")
    assert "MUJOCO_GL=no-such-backend" in line and "unset MUJOCO_GL" in line, line


def test_mp4_without_imageio(finished_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio", None)  # import imageio raises ImportError
    line = _refused(capsys, copy_run(finished_run, tmp_path / "run"), "--video", "1")
    assert ".[video]" in line and "--video-format gif" in line, line


def test_no_video_needs_no_video_packages(finished_run, tmp_path, capsys, monkeypatch):
    """Without --video nothing about videos is checked: a plain install still evaluates."""
    monkeypatch.setitem(sys.modules, "imageio", None)
    monkeypatch.setattr(rendering, "_probe", lambda backend: "must not be called")
    monkeypatch.setattr(rendering, "_found", {})
    run = copy_run(finished_run, tmp_path / "run")
    code, _, err = dema(capsys, "eval", run, "--episodes", "1", "--max-episode-steps", "5")
    assert code == 0, err
    assert not (run / "videos").exists()
