"""Class 3, two processes on one run directory: whoever holds the run's lock works alone; the others
are refused with the holder's pid, host and command, and the lock dies with its holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from corpus import copy_run, dema, one_error_line, snapshot, train_argv

HOLDER = """
import sys, time
from dema.run.lock import RunLock
RunLock(sys.argv[1], "dema train --resume (the other process)").acquire()
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
def held(tmp_path):
    """Another process holding a run directory's lock; killed (-9) at the end, or by the test."""
    processes = []

    def hold(folder):
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
        processes.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield hold
    for proc in processes:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_second_process_on_a_run_is_refused_and_told_who_holds_it(finished_run, tiny_dataset, tmp_path, capsys, held):
    runs = tmp_path / "runs"
    run = copy_run(finished_run, runs / "done")
    before = snapshot(run)
    holder = held(run)
    attempts = {
        "resume": ["train", "--resume", run, "--schedule.updates", "6"],
        "eval": ["eval", run, "--episodes", "1"],
        "overwrite": train_argv(tiny_dataset, runs, "--overwrite", "True", name="done"),
    }
    for case, argv in attempts.items():
        code, _, err = dema(capsys, *argv)
        line = one_error_line(err)
        assert code == 2, case
        assert f"in use by pid {holder.pid}" in line and "the other process" in line, line
    assert snapshot(run) == before  # nothing was written: not a metrics row, not eval.json

    # kill -9 of the holder releases the lock (the kernel does it): the run resumes.
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    code, out, err = dema(capsys, "train", "--resume", run, "--schedule.updates", "6")
    assert code == 0, err
    assert "resumed at step 4" in out


def test_a_fresh_run_is_locked_while_it_trains(tiny_dataset, tmp_path, monkeypatch):
    """The lock is taken when the run directory is made and held until training ends."""
    from dema.run.lock import RunLock
    from dema.train import loop
    from train_helpers import tiny_config

    config = tiny_config(tiny_dataset, tmp_path, "bc", updates=2)
    seen = []
    original = loop._train

    def during(s, *args):
        other = subprocess.run([sys.executable, "-c", "import sys; from dema.run.lock import RunLock; "
                                "RunLock(sys.argv[1]).acquire()", str(s.run.path)], capture_output=True, text=True)
        seen.append(other)
        return original(s, *args)

    monkeypatch.setattr(loop, "_train", during)
    loop.train(config, log=lambda *_: None)
    assert seen[0].returncode != 0 and "RunBusy" in seen[0].stderr and f"pid {os.getpid()}" in seen[0].stderr
    RunLock(config.run_dir()).acquire().release()  # released at the end
    with RunLock(config.run_dir()):  # and re-entrant within one process
        with RunLock(config.run_dir()):
            pass
