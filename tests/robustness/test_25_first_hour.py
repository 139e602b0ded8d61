"""A newcomer's first hour (issue 25): a missing dataset is its one error line, not the end of a
config dump; training takes one torch thread unless told otherwise; `dema params | head` ends
quietly instead of with a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from corpus import dema, one_error_line, train_argv

from dema.run import TrainConfig


def test_a_missing_dataset_is_one_line_before_any_config_dump(tmp_path, capsys):
    argv = [a for a in train_argv(tmp_path / "hopper-medium-not-collected.hdf5", tmp_path / "runs")]
    code, out, err = dema(capsys, *argv)
    assert code == 2
    line = one_error_line(err)
    assert "hopper-medium-not-collected" in line
    assert "run directory" not in out + err and "config:" not in out + err
    assert not (tmp_path / "runs").exists()


def test_training_takes_one_thread_by_default():
    assert TrainConfig().threads == 1


@pytest.mark.parametrize("argv", [["params"], ["--help"]], ids=["long output", "short output"])
def test_a_reader_that_leaves_ends_the_command_quietly(argv):
    """`dema params | head -1`: the pipe closes while dema writes (a long output) or when its
    buffer is flushed at exit (a short one). A pipe whose reading end is closed before dema starts
    makes either case certain."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-c", "import sys; from dema.cli import main; sys.exit(main())",
                               *argv], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.stderr == ""  # no traceback, no "Exception ignored ... BrokenPipeError"
    assert done.returncode == 141  # 128 + SIGPIPE, as a shell reports a Unix tool that a pipe ended
