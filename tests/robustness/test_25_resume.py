"""Issue 25, class 7: `dema train --resume` never loses or rewrites anything silently.

- fewer updates than the run already trained is refused (it used to exit 0 and rewrite config.json);
- resuming under another compute path (DEMA_SCAN, DEMA_SSM, DEMA_FUSED_STEP, torch threads, another
  CPU or GPU) says that the continuation is no longer bit-identical to an uninterrupted run;
- metrics.csv and evals.csv after an interrupted and resumed run equal an uninterrupted run's."""

from __future__ import annotations

import csv
import dataclasses

import pytest

from dema.scan.paths import ComputePaths, compute_paths

from corpus import copy_run, dema, one_error_line, snapshot, tiny_run, train_argv

# Log every 2 updates, checkpoint every 3: the checkpoint falls inside a log interval, so a resume
# from it must carry the interval's sums over, and the interruption after update 4 loses the row at 4.
SCHEDULE = ["--schedule.updates", "6", "--schedule.log-every", "2", "--schedule.checkpoint-every", "3",
            "--schedule.eval-every", "2", "--eval.at-end", "False"]
DETERMINISTIC = ("step", "loss", "grad_norm", "lr")  # ms_per_step and train_seconds are timings


def test_resume_with_fewer_updates_than_trained_is_refused(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")  # trained 4 updates
    before = snapshot(run)
    code, _, err = dema(capsys, "train", "--resume", run, "--schedule.updates", "2")
    line = one_error_line(err)
    assert code == 2 and "--schedule.updates 2" in line and "4 updates" in line, line
    assert snapshot(run) == before  # config.json is not rewritten
    code, _, err = dema(capsys, "train", "--resume", run, "--schedule.updates", "4")  # as many: fine
    assert code == 0, err


@pytest.mark.parametrize("change", ["DEMA_SCAN=ref", "DEMA_SSM=ref", "DEMA_FUSED_STEP=0", "--threads 2", "cpu"])
def test_resume_under_another_compute_path_says_bit_exactness_is_lost(finished_run, tmp_path, capsys,
                                                                       monkeypatch, change):
    run = copy_run(finished_run, tmp_path / "run")
    options, paths = [], {}
    if change.startswith("DEMA_"):  # the variable's path, scoped: the environment is read once per process
        paths = dataclasses.asdict(ComputePaths.from_environment(dict([change.split("=")])))
    elif change.startswith("--"):
        options = change.split()
    else:  # the same device name on another machine
        monkeypatch.setattr("dema.machine.cpu_model", lambda: "Another CPU 9000")
    with compute_paths(**paths):
        code, out, err = dema(capsys, "train", "--resume", run, "--schedule.updates", "6", *options)
    assert code == 0, err
    notes = [line for line in out.splitlines() if "bit-identical" in line]
    assert len(notes) == 1 and notes[0].startswith("note:"), out


def test_resume_under_the_same_compute_path_says_nothing(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    code, out, err = dema(capsys, "train", "--resume", run, "--schedule.updates", "6")
    assert code == 0, err
    assert "bit-identical" not in out


def _rows(path, fields=None):
    with open(path, newline="") as f:
        return [{k: r[k] for k in (fields or r)} for r in csv.DictReader(f)]


def test_metrics_after_an_interrupted_and_resumed_run_equal_an_uninterrupted_runs(tiny_dataset, tmp_path, capsys,
                                                                                   monkeypatch):
    straight = tiny_run(capsys, tiny_dataset, tmp_path / "a", "run", *SCHEDULE)

    from dema.data import streams

    original, calls = streams.WindowStream.next, {"n": 0}

    def interrupted_at_update_5(self):
        calls["n"] += 1
        if calls["n"] == 5:  # after the checkpoint at 3 and the row at 4: Ctrl-C
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(streams.WindowStream, "next", interrupted_at_update_5)
    code, _, err = dema(capsys, *train_argv(tiny_dataset, tmp_path / "b", *SCHEDULE))
    assert code == 130, err
    monkeypatch.undo()
    resumed = tmp_path / "b" / "run"
    code, _, err = dema(capsys, "train", "--resume", resumed)
    assert code == 0, err

    assert _rows(resumed / "metrics.csv", DETERMINISTIC) == _rows(straight / "metrics.csv", DETERMINISTIC)
    assert _rows(resumed / "evals.csv") == _rows(straight / "evals.csv")
