"""Class 1, data loss: `dema train --overwrite` replaces a finished run only once the new run has
validated everything it can; a start that fails leaves the old run exactly as it was."""

from __future__ import annotations

import json

from corpus import copy_run, dema, hopper_arrays, one_error_line, snapshot, tiny_run, train_argv, write_d4rl


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


def test_overwrite_replaces_only_a_run_directory_of_demas(finished_run, tiny_dataset, tmp_path, capsys):
    """`--overwrite` with a run name of `.` or `..`, or naming a folder dema did not make, is one
    line and deletes nothing (it used to empty the folder, the runs folder or its parent)."""
    runs = tmp_path / "project" / "runs"
    run = copy_run(finished_run, runs / "done")
    notes = tmp_path / "project" / "notes"
    notes.mkdir()
    (notes / "thesis.tex").write_text("months of work")
    (tmp_path / "project" / "README.md").write_text("keep me")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"}
    for name, folder in ((".", runs), ("..", runs.parent), ("../notes", notes)):
        code, _, err = dema(capsys, *train_argv(tiny_dataset, runs, "--overwrite", "True", name=name))
        assert code == 2, name
        line = one_error_line(err)
        assert "not a run directory of dema's" in line and str(folder.name) in line, line
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"} == before
    assert (run / "eval.json").is_file()


def test_a_run_stopped_before_its_first_checkpoint_starts_again_with_the_same_command(tiny_dataset, tmp_path, capsys):
    """A run killed before its first checkpoint (here: its folder as such a run leaves it) is not a dead
    end: --resume names the fix, and the same command without --resume starts it again from update 0."""
    runs = tmp_path / "runs"
    argv = train_argv(tiny_dataset, runs, name="early")
    finished = tiny_run(capsys, tiny_dataset, tmp_path / "whole", "early")
    stopped = runs / "early"
    stopped.mkdir(parents=True)
    for name in ("config.json", "identity.json", "normalization.json", "provenance.json"):
        (stopped / name).write_bytes((finished / name).read_bytes())
    (stopped / "metrics.csv").write_text("step,loss,grad_norm,lr,ms_per_step,train_seconds\n")
    code, _, err = dema(capsys, "train", "--resume", stopped)
    assert code == 2 and "without --resume" in one_error_line(err)
    code, out, err = dema(capsys, *argv)
    assert code == 0, err
    assert "stopped before its first checkpoint" in out + err
    assert (stopped / "eval.json").is_file() and (stopped / "train_state.pt").is_file()
    # a run that did checkpoint is still refused without --overwrite or --resume
    code, _, err = dema(capsys, *argv)
    assert code == 2 and "--resume" in one_error_line(err)
