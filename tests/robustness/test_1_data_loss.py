"""Class 1, data loss: `dema train --overwrite True` replaces a finished run only once the new run has
validated everything it can; a start that fails leaves the old run exactly as it was."""

from __future__ import annotations

import json

from corpus import copy_run, dema, hopper_arrays, one_error_line, snapshot, train_argv, write_d4rl


def test_a_failing_overwrite_leaves_the_finished_run_untouched(finished_run, tiny_dataset, tmp_path, capsys):
    runs = tmp_path / "runs"
    run = copy_run(finished_run, runs / "done")
    before = snapshot(run)
    assert {"model.safetensors", "train_state.pt", "eval.json", "identity.json"} <= set(before)
    wrong_size = write_d4rl(tmp_path / "hopper-medium-17d.hdf5", hopper_arrays(
        observations=lambda o: o.repeat(2, axis=1)[:, :17]))
    failing = {
        "a mistyped dataset path": train_argv(tmp_path / "hopper-medium-typo.hdf5", runs, "--overwrite", "True", name="done"),
        "--device gpu": train_argv(tiny_dataset, runs, "--overwrite", "True", "--device", "gpu", name="done"),
        "--device cuda:7": train_argv(tiny_dataset, runs, "--overwrite", "True", "--device", "cuda:7", name="done"),
        "a dataset that does not fit Hopper": train_argv(wrong_size, runs, "--overwrite", "True", name="done"),
        "a model that does not fit the data": train_argv(tiny_dataset, runs, "--overwrite", "True",
                                                         "--model.max-ep-len", "8", name="done"),
    }
    for case, argv in failing.items():
        code, _, err = dema(capsys, *argv)
        assert code == 2, case
        one_error_line(err)
        assert snapshot(run) == before, f"{case} changed the finished run"

    # The same start with everything valid does replace it.
    code, _, err = dema(capsys, *train_argv(tiny_dataset, runs, "--overwrite", "True", "--seed", "1", name="done"))
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["seed"] == 1
    assert snapshot(run)["model.safetensors"] != before["model.safetensors"]


def test_without_overwrite_an_existing_run_is_refused_before_the_dataset_is_read(finished_run, tmp_path, capsys):
    runs = tmp_path / "runs"
    run = copy_run(finished_run, runs / "done")
    before = snapshot(run)
    code, _, err = dema(capsys, *train_argv(tmp_path / "hopper-medium-typo.hdf5", runs, name="done"))
    assert code == 2 and "--resume" in one_error_line(err) and snapshot(run) == before
