"""The adverse-use corpus of tests/robustness: the command line as a careless or unlucky user runs it,
and the broken files such a user ends up with, all made by the tests themselves (issue 13).

(A plain module, not conftest.py: several test folders have a conftest, and `from conftest import`
would pick whichever was imported last.)
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np

from dema.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))  # the tests' one tiny-D4RL writer
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from data_factories import make_arrays, write_d4rl  # noqa: E402, F401 (re-exported to the tests)
from train_helpers import write_tiny_hdf5  # noqa: E402, F401 (re-exported to the tests)

# A model and schedule that train in a fraction of a second: 4 updates, checkpoints at 2 and 4.
TINY = ["--model.n-layer", "1", "--model.embed-dim", "16", "--model.d-model", "16", "--model.d-state", "4",
        "--model.context-len", "5", "--model.max-ep-len", "64", "--optim.batch-size", "8",
        "--optim.warmup-steps", "2", "--schedule.updates", "4", "--schedule.log-every", "2",
        "--schedule.checkpoint-every", "2", "--schedule.eval-every", "0", "--eval.train-episodes", "1",
        "--eval.episodes", "1", "--eval.max-episode-steps", "10", "--progress", "False", "--threads", "1"]


def dema(capsys, *argv) -> tuple[int, str, str]:
    """`dema ARGV` in this process: (exit code, stdout, stderr). A traceback fails the test by itself."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def train_argv(dataset: Path, runs: Path, *extra, model: str = "dt", name: str = "run") -> list:
    return ["train", "--model", model, "--dataset", dataset, "--runs-dir", runs, "--run-name", name, *TINY, *extra]


def tiny_run(capsys, dataset: Path, runs: Path, name: str = "run", *extra) -> Path:
    """A finished tiny run (4 updates, final evaluation of one short episode written to eval.json)."""
    code, _, err = dema(capsys, *train_argv(dataset, runs, *extra, name=name))
    assert code == 0, err
    return runs / name


def hopper_arrays(lengths=(30, 20), seed=0, **changes) -> dict:
    """Hopper-shaped episodes (the last cut by a timeout) with some arrays changed."""
    arrays = make_arrays(lengths, obs_dim=11, act_dim=3, seed=seed,
                         ends=["terminal"] * (len(lengths) - 1) + ["timeout"])
    for key, value in changes.items():
        arrays[key] = value(arrays[key]) if callable(value) else value
    return arrays


def snapshot(folder: Path) -> dict[str, str]:
    """name -> sha256 of every file in a folder (the lock file aside): to show nothing changed."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).iterdir())
            if p.is_file() and p.name != ".lock"}


def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def one_error_line(err: str) -> str:
    """The error a failing command printed: exactly one `dema <cmd>: error:` line, no traceback."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1, err
    return errors[0]


def flip_bytes(path: Path, start_fraction: float = 0.5) -> None:
    """Overwrite the second half of a file's bytes with 0x7fffffff words (bit rot, a bad copy)."""
    data = bytearray(path.read_bytes())
    for i in range(int(len(data) * start_fraction), len(data) - 4, 4):
        data[i:i + 4] = b"\xff\xff\xff\x7f"
    path.write_bytes(bytes(data))


def finite(values) -> bool:
    return bool(np.isfinite(np.asarray(values, dtype=np.float64)).all())
