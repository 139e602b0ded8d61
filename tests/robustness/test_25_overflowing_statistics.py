"""Issue 25, class 5: observations whose statistics overflow float32 are refused before the first update.

Observations near 1e20 are finite, so loading accepts them; but their variance (1e40) overflows
float32, the state std becomes inf and every normalised state 0: a model trained on them learns from
nothing but the returns and the previous actions, and says nothing about it."""

from __future__ import annotations

import numpy as np
import pytest

from corpus import dema, hopper_arrays, one_error_line, train_argv, write_d4rl


def _one_feature(scale):
    def change(obs):
        obs = obs.copy()
        obs[:, 2] *= scale
        return obs
    return change


OVERFLOWING = {
    "observations near 1e20": lambda o: o * 1e20,
    "one feature near 1e20": _one_feature(1e20),
    "observations of 3e38": lambda o: np.full_like(o, 3e38),
}


@pytest.mark.parametrize("case", list(OVERFLOWING))
def test_training_refuses_observations_whose_statistics_overflow(tmp_path, capsys, case):
    dataset = write_d4rl(tmp_path / "hopper-medium-huge.hdf5", hopper_arrays(observations=OVERFLOWING[case]))
    code, _, err = dema(capsys, *train_argv(dataset, tmp_path / "runs"))
    line = one_error_line(err)
    assert code == 2 and "observations" in line and "Fix:" in line, line
    assert not (tmp_path / "runs").exists()  # refused before anything was written
    code, out, err = dema(capsys, "data", dataset)  # `dema data` shows the file, and warns
    assert code == 0, err
    assert "warning:" in err and "observations" in err and "dema train` refuses" in err, err


def test_large_but_representable_observations_still_train(tmp_path, capsys):
    dataset = write_d4rl(tmp_path / "hopper-medium-big.hdf5", hopper_arrays(observations=lambda o: o * 1e15))
    code, _, err = dema(capsys, *train_argv(dataset, tmp_path / "runs", "--eval.at-end", "False"))
    assert code == 0, err
    code, _, err = dema(capsys, "data", dataset)
    assert code == 0 and "warning:" not in err, err
