"""Class 6, values accepted but wrong: each is a refusal that names the value and the fix, or a
warning that names the value and the consequence."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from corpus import dema, hopper_arrays, one_error_line, train_argv, write_d4rl

BAD_DATASETS = {
    "rewards of 3e38": ({"rewards": lambda r: np.full_like(r, 3e38)}, "returns-to-go reach"),
    "rewards of 1e30": ({"rewards": lambda r: np.full_like(r, 1e30)}, "returns-to-go reach"),
    "actions of 1e6": ({"actions": lambda a: a * 1e6}, "actions reach"),
}


@pytest.mark.parametrize("case", list(BAD_DATASETS))
def test_training_refuses_values_it_cannot_learn_from(tmp_path, capsys, case):
    change, expected = BAD_DATASETS[case]
    dataset = write_d4rl(tmp_path / "hopper-medium-bad.hdf5", hopper_arrays(**change))
    code, _, err = dema(capsys, *train_argv(dataset, tmp_path / "runs"))
    line = one_error_line(err)
    assert code == 2 and expected in line and "Fix:" in line, line
    assert not (tmp_path / "runs" / "run").exists()
    code, out, err = dema(capsys, "data", dataset)  # `dema data` shows the file, and warns
    assert code == 0 and "warning:" in err


def test_values_just_outside_the_action_range_are_a_warning(tmp_path, capsys):
    dataset = write_d4rl(tmp_path / "hopper-medium-wide.hdf5", hopper_arrays(actions=lambda a: a * 1.2))
    code, out, err = dema(capsys, *train_argv(dataset, tmp_path / "runs", "--eval.at-end", "False"))
    assert code == 0, err
    assert "actions lie outside [-1, 1]" in out and "nearest bound" in out


def test_bad_dataset_files_and_options_are_refused(tiny_dataset, tmp_path, capsys, monkeypatch):
    text = write_d4rl(tmp_path / "hopper-text.hdf5", hopper_arrays(rewards=lambda r: r.astype("S8")))
    numbers_as_text = write_d4rl(tmp_path / "hopper-numtext.hdf5",
                                 hopper_arrays(observations=lambda o: o.astype(str).astype("S")))
    cases = {
        "string rewards": (["data", text], "`rewards` holds |S8 values, not numbers"),
        "numbers stored as text": (["data", numbers_as_text], "`observations` holds"),
        "--max-transitions 0": (["data", tiny_dataset, "--max-transitions", "0"], "--max-transitions 0 keeps no"),
        "--max-transitions -5": (["data", tiny_dataset, "--max-transitions", "-5"], "--max-transitions -5 keeps no"),
        "--model.max-ep-len below the episodes": (train_argv(tiny_dataset, tmp_path / "runs", "--model.max-ep-len", "16"),
                                                  "model.max_ep_len is 16 but"),
        "--eval.targets nan": (train_argv(tiny_dataset, tmp_path / "runs", "--eval.targets", "nan"),
                               "nan is not a finite return target"),
    }
    for case, (argv, expected) in cases.items():
        code, _, err = dema(capsys, *argv)
        assert code == 2 and expected in one_error_line(err), (case, err)

    real_open = builtins.open

    def unreadable(file, *args, **kwargs):
        if str(file) == str(tiny_dataset):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", unreadable)  # chmod 000 does not stop root, which CI may be
    code, _, err = dema(capsys, "data", tiny_dataset)
    assert code == 2 and "cannot be read (Permission denied)" in one_error_line(err)


def test_bad_evaluation_options_are_refused(finished_run, tmp_path, capsys):
    from corpus import copy_run

    run = copy_run(finished_run, tmp_path / "run")
    (run / "best.safetensors").unlink()  # as after a run without evaluations during training
    cases = {
        "--targets nan": (["--targets", "nan"], "nan is not a finite return target"),
        "--targets inf": (["--targets", "3600", "inf"], "inf is not a finite return target"),
        "--max-episode-steps -5": (["--max-episode-steps", "-5"], "--max-episode-steps must be >= 0"),
        "--seeds -1": (["--seeds", "-1"], "--seeds must be >= 0"),
        "--episodes 0": (["--episodes", "0"], "--episodes must be >= 1"),
        "--checkpoint best without one": (["--checkpoint", "best"], "best.safetensors does not exist"),
        "--device gpu": (["--device", "gpu"], "is not a torch device"),
    }
    for case, (options, expected) in cases.items():
        code, _, err = dema(capsys, "eval", run, *options)
        assert code == 2 and expected in one_error_line(err), (case, err)
