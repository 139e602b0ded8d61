"""A newcomer's first hour (issue 25): a missing dataset is its one error line, not the end of a
config dump; training takes one torch thread unless told otherwise."""

from __future__ import annotations

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
