"""Class 7, tracebacks: every failure a user can cause through the command line or a file is one line
naming the problem (and the fix) and exit code 2. The corpus: options out of range, files in the wrong
place, and run directories whose files were damaged one at a time."""

from __future__ import annotations

import json

import pytest

from corpus import copy_run, dema, one_error_line


def _config(run, **changes):
    path = run / "config.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        section, _, field = key.rpartition(".")
        (data[section] if section else data)[field] = value
    path.write_text(json.dumps(data))


DAMAGED_RUNS = {  # name -> (damage, command after the run directory)
    "normalization.json emptied": (lambda r: (r / "normalization.json").write_text("{}"), ["eval"]),
    "normalization.json cut": (lambda r: (r / "normalization.json").write_text('{"state_mean": [0'), ["eval"]),
    "config.json is a list": (lambda r: (r / "config.json").write_text("[]"), ["eval"]),
    "config.json seed is text": (lambda r: _config(r, seed="abc"), ["train", "--resume"]),
    "config.json n_layer is text": (lambda r: _config(r, **{"model.n_layer": "x"}), ["eval"]),
    "config.json section is a number": (lambda r: _config(r, optim=5), ["eval"]),
    "identity.json cut": (lambda r: (r / "identity.json").write_text("{"), ["train", "--resume"]),
    "provenance.json cut": (lambda r: (r / "provenance.json").write_text("{"), ["train", "--resume"]),
    "no checkpoint at all": (lambda r: [(r / n).unlink() for n in ("train_state.pt", "train_state.prev.pt")],
                             ["train", "--resume"]),
    "model.safetensors garbage": (lambda r: (r / "model.safetensors").write_bytes(b"\0" * 64), ["eval"]),
}


@pytest.mark.parametrize("case", list(DAMAGED_RUNS))
def test_a_damaged_run_directory_is_one_line(finished_run, tmp_path, capsys, case):
    damage, command = DAMAGED_RUNS[case]
    run = copy_run(finished_run, tmp_path / "run")
    damage(run)
    code, _, err = dema(capsys, *command, run, "--schedule.updates" if command[0] == "train" else "--episodes", "6")
    assert code == 2, err
    one_error_line(err)


def test_bad_command_lines_are_one_line(tiny_dataset, finished_run, tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    (tmp_path / "empty.hdf5").write_bytes(b"")
    (tmp_path / "garbage.pkl").write_bytes(b"\x80garbage")
    train = ["train", "--model", "dt", "--dataset", tiny_dataset, "--runs-dir", tmp_path / "runs", "--progress", "False"]
    commands = [
        ["data", tmp_path / "empty.hdf5"],
        ["data", tmp_path / "garbage.pkl"],
        ["data", tmp_path / "junk"],
        ["data", tmp_path / "missing.hdf5"],
        ["data", tiny_dataset, "--env", "nowhere"],
        ["collect", "hopper", "nope", "--out", tmp_path / "c.hdf5"],
        ["collect", "hopper", "random", "--steps", "-5", "--out", tmp_path / "c.hdf5"],
        ["collect", "hopper", "random", "--num-envs", "0", "--out", tmp_path / "c.hdf5"],
        ["collect", "maze2d-umaze", "random", "--steps", "10", "--out", tmp_path / "a-file" / "m.hdf5"],
        ["collect", "hopper", "medium", "--policy", tmp_path / "missing.zip", "--out", tmp_path / "c.hdf5"],
        [*train, "--device", "gpu"],
        [*train, "--device", "cuda:7"],
        [*train, "--optim.betas", "2", "0.9"],
        [*train, "--optim.lr", "nan"],
        [*train, "--model.dropout", "1.5"],
        [*train, "--eval.seeds", "-1"],
        [*train, "--runs-dir", tmp_path / "a-file"],
        ["train", "--model", "dt", "--dataset", tmp_path / "junk", "--preset", "hopper-medium"],
        ["train", "--resume", tmp_path / "junk"],
        ["train", "--resume", finished_run, "--overwrite", "True"],
        ["eval", tmp_path / "a-file"],
        ["eval", tmp_path / "missing-run"],
    ]
    for argv in commands:
        code, _, err = dema(capsys, *argv)
        assert code == 2, (argv, err)
        one_error_line(err)
