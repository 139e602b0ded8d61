"""Issue 25, class 6: a full disk is one line everywhere (train before its first write, eval,
surgery, decay), and the same command run again once there is room finishes the work."""

from __future__ import annotations

import errno
import os

import pytest
from corpus import copy_run, dema, one_error_line, train_argv
from test_25_tracebacks import ANALYSES, dema_run  # noqa: F401 (the fixture: a tiny DeMa run)


@pytest.fixture
def full_disk(monkeypatch):
    """Every atomic write of a file named `name` fails as on a full disk (dema.files renames each
    finished temporary file into place with os.replace)."""
    real_replace = os.replace

    def make(name: str):
        def replace(src, dst, *args, **kwargs):
            if os.path.basename(dst) == name:
                raise OSError(errno.ENOSPC, "No space left on device", src, None, dst)
            return real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr("dema.files.os.replace", replace)
        return lambda: monkeypatch.setattr("dema.files.os.replace", real_replace)

    return make


def test_train_on_a_full_disk_before_its_first_write_is_one_line_and_the_same_command_starts_it(
        tiny_dataset, tmp_path, capsys, full_disk):
    argv = train_argv(tiny_dataset, tmp_path / "runs", name="full")
    room_again = full_disk("config.json")
    code, _, err = dema(capsys, *argv)
    line = one_error_line(err)
    assert code == 2 and "No space left on device" in line and "config.json" in line, line
    room_again()
    code, _, err = dema(capsys, *argv)
    assert code == 0, err
    assert (tmp_path / "runs" / "full" / "eval.json").is_file()


def test_eval_on_a_full_disk_is_one_line_and_keeps_the_previous_score(dema_run, tmp_path, capsys, full_disk):  # noqa: F811
    run = copy_run(dema_run, tmp_path / "run")
    room_again = full_disk("eval.json")
    argv = ["eval", run, "--episodes", "1", "--max-episode-steps", "5"]
    code, _, err = dema(capsys, *argv)
    line = one_error_line(err)
    assert code == 2 and "No space left on device" in line and "eval.json" in line, line
    assert not (run / "eval.json").exists()  # the run was trained without a final evaluation
    room_again()
    code, _, err = dema(capsys, *argv)
    assert code == 0, err
    assert (run / "eval.json").is_file()


@pytest.mark.parametrize("command", ["surgery", "decay"])
def test_an_analysis_on_a_full_disk_is_one_line_and_runs_again(dema_run, tmp_path, capsys, full_disk, command):  # noqa: F811
    run = copy_run(dema_run, tmp_path / "run")
    argv = ANALYSES[command]
    room_again = full_disk(f"{command}.json")
    code, _, err = dema(capsys, argv[0], run, *argv[1:])
    line = one_error_line(err)
    assert code == 2 and "No space left on device" in line and f"{command}.json" in line, line
    room_again()
    code, _, err = dema(capsys, argv[0], run, *argv[1:])
    assert code == 0, err
    assert (run / command / f"{command}.json").is_file()
