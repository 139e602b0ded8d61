"""Issue 25, class 8: the last tracebacks. A read-only output folder for `dema surgery`, `dema decay`
and `dema attention` (checked before the work, not after minutes of rollouts), a normalization.json
whose statistics do not fit the run's states, and bytes that are not text in metrics.csv or evals.csv."""

from __future__ import annotations

import builtins
import io
import json
import os
from pathlib import Path

import pytest

from corpus import copy_run, dema, one_error_line, snapshot, train_argv


@pytest.fixture(scope="module")
def dema_run(tiny_dataset, tmp_path_factory) -> Path:
    """A tiny Transformer-like DeMa run (the analyses read the hidden attention of Mamba layers)."""
    import contextlib

    from dema.cli import main

    runs = tmp_path_factory.mktemp("dema-runs")
    argv = [str(a) for a in train_argv(tiny_dataset, runs, "--eval.at-end", "False", model="dema", name="dema")]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(argv) == 0, err.getvalue()
    return runs / "dema"


def _inside(path, folder: Path) -> bool:
    try:
        Path(os.fsdecode(path)).resolve().relative_to(folder)
        return True
    except (TypeError, ValueError):
        return False


@pytest.fixture
def read_only(monkeypatch):
    """Make a folder read-only: chmod, and for root (whom chmod does not stop, and CI may run as root)
    every write under it fails as on a read-only mount."""
    def make(folder: Path) -> Path:
        folder = folder.resolve()
        folder.chmod(0o555)
        if os.geteuid() != 0:
            return folder
        refuse = lambda path: PermissionError(13, "Permission denied", str(path))
        real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

        def open_(file, mode="r", *args, **kwargs):
            if isinstance(file, (str, bytes, os.PathLike)) and set(mode) & set("wax+") and _inside(file, folder):
                raise refuse(file)
            return real_open(file, mode, *args, **kwargs)

        def os_open(path, flags, *args, **kwargs):
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and _inside(path, folder):
                raise refuse(path)
            return real_os_open(path, flags, *args, **kwargs)

        def mkdir(path, *args, **kwargs):
            if _inside(path, folder):
                raise refuse(path)
            return real_mkdir(path, *args, **kwargs)

        for target, name, value in ((builtins, "open", open_), (io, "open", open_), (os, "open", os_open),
                                    (os, "mkdir", mkdir)):
            monkeypatch.setattr(target, name, value)
        return folder

    return make


ANALYSES = {
    "surgery": ["surgery", "--episodes", "1", "--max-episode-steps", "5", "--kinds", "zero", "--layers", "0",
                "--no-identity"],
    "decay": ["decay", "--episodes", "1", "--max-episode-steps", "5"],
    "attention": ["attention", "--step", "3"],
}


@pytest.mark.parametrize("command", list(ANALYSES))
def test_analyses_check_a_read_only_run_directory_before_the_work(dema_run, tmp_path, capsys, read_only, command):
    run = copy_run(dema_run, tmp_path / "run")
    before = snapshot(run)
    argv = ANALYSES[command]
    read_only(run)
    code, out, err = dema(capsys, argv[0], run, *argv[1:])
    run.chmod(0o755)
    line = one_error_line(err)
    assert code == 2 and "cannot write" in line and "--out" in line, line
    assert out == ""  # refused before the work (no rollout, no table)
    assert snapshot(run) == before and not (run / command).exists()


@pytest.mark.parametrize("command", list(ANALYSES))
def test_analyses_refuse_an_out_that_is_a_file(dema_run, tmp_path, capsys, command):
    (tmp_path / "a-file").write_text("x")
    argv = ANALYSES[command]
    code, out, err = dema(capsys, argv[0], dema_run, *argv[1:], "--out", tmp_path / "a-file" / "out")
    assert code == 2 and "not a folder" in one_error_line(err), err


def _normalization(run: Path, **changes) -> None:
    path = run / "normalization.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        data[key] = value(data[key]) if callable(value) else value
    path.write_text(json.dumps(data))


BAD_NORMALIZATION = {
    "state_mean of 3 values": {"state_mean": lambda m: m[:3]},
    "state_mean of 1 value": {"state_mean": lambda m: m[:1]},  # would broadcast over every feature silently
    "state_std of 12 values": {"state_std": lambda s: s + [1.0]},
    "state_std of zeros": {"state_std": lambda s: [0.0] * len(s)},
}


@pytest.mark.parametrize("case", list(BAD_NORMALIZATION))
def test_a_normalization_that_does_not_fit_the_states_is_one_line(finished_run, tmp_path, capsys, case):
    run = copy_run(finished_run, tmp_path / "run")
    _normalization(run, **BAD_NORMALIZATION[case])
    before = snapshot(run)
    code, _, err = dema(capsys, "eval", run, "--episodes", "1")
    line = one_error_line(err)
    assert code == 2 and "normalization.json" in line and "--resume" in line, line
    assert snapshot(run) == before
    code, _, err = dema(capsys, "train", "--resume", run)  # the fix the line names works
    assert code == 0, err
    code, _, err = dema(capsys, "eval", run, "--episodes", "1")
    assert code == 0, err


def _damage(path: Path) -> None:
    """Bytes that are not UTF-8 in the middle of a CSV (a bad copy, a damaged disk)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4] = b"\xff\xfe\x00\x81"
    path.write_bytes(bytes(data))


def test_resume_reads_a_metrics_csv_with_bytes_that_are_not_text(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    _damage(run / "metrics.csv")
    _damage(run / "evals.csv")
    code, out, err = dema(capsys, "train", "--resume", run, "--schedule.updates", "6")
    assert code == 0, err
    assert "damaged" in out and "metrics.csv" in out  # said, not silent
    text = (run / "metrics.csv").read_text(encoding="utf-8")  # the file is text again
    steps = [line.split(",")[0] for line in text.splitlines()[1:]]
    assert "6" in steps and all(step.isdigit() for step in steps), text


def test_eval_and_demo_read_csvs_with_bytes_that_are_not_text(finished_run, tmp_path, capsys):
    from dema.commands.demo import _steady_ms_per_step

    run = copy_run(finished_run, tmp_path / "run")
    _damage(run / "metrics.csv")
    _damage(run / "evals.csv")
    code, _, err = dema(capsys, "eval", run, "--episodes", "1")  # reads evals.csv for the best evaluation
    assert code == 0, err
    assert _steady_ms_per_step(run) > 0
