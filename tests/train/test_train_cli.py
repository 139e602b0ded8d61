"""The command line end to end on tiny data: dema train, dema eval, dema train --resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dema.cli import main

TINY = ["--model.n-layer", "1", "--model.embed-dim", "16", "--model.d-model", "16", "--model.d-state", "4",
        "--model.context-len", "5", "--optim.batch-size", "8", "--optim.warmup-steps", "2",
        "--schedule.log-every", "2", "--schedule.checkpoint-every", "2", "--eval.train-episodes", "1",
        "--eval.episodes", "2", "--eval.max-episode-steps", "10", "--progress", "False", "--threads", "1"]


def test_train_then_eval_then_resume(tiny_dataset, tmp_path, capsys):
    argv = ["train", "--model", "dt", "--dataset", str(tiny_dataset), "--protocol", "cpu-short",
            "--runs-dir", str(tmp_path), "--schedule.updates", "4", "--schedule.eval-every", "2", *TINY]
    assert main(argv) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "hopper-medium-tiny_dt_cpu-short_s0"
    assert '"protocol": "cpu-short"' in out and "step       4/4" in out and "final: normalised" in out
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["protocol"] == "cpu-short" and saved["schedule"]["updates"] == 4 and saved["model"]["n_layer"] == 1
    first = json.loads((run_dir / "eval.json").read_text())
    assert first["episodes"] == 2 and first["protocol"] == "cpu-short"

    assert main(["eval", str(run_dir), "--episodes", "3", "--seeds", "0", "1", "--checkpoint", "final"]) == 0
    assert "final     target     3600" in capsys.readouterr().out
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["episodes"] == 6 and report["seeds"] == [0, 1] and report["best_checkpoint"] is None

    assert main(["train", "--resume", str(run_dir), "--schedule.updates", "6"]) == 0
    assert "resumed at step 4" in capsys.readouterr().out
    assert json.loads((run_dir / "config.json").read_text())["schedule"]["updates"] == 6


def test_errors_are_one_line(tiny_dataset, tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "is not a trained run" in capsys.readouterr().err
    assert main(["train", "--model", "dt", "--dataset", str(tmp_path / "missing.hdf5")]) == 2
    assert main(["train", "--model", "dt", "--dataset", str(tiny_dataset), "--optim.lr", "0",
                 "--runs-dir", str(tmp_path)]) == 2
    assert "optim.lr must be > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--model", "dt", "--dataset", str(tiny_dataset), "--no-such-option", "1"])


def test_the_installed_command(tiny_dataset, tmp_path):
    """`python -m dema.cli train ...` in a fresh process, as a user runs it."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "dema.cli", "train", "--model", "dema", "--dataset",
                           str(tiny_dataset), "--runs-dir", str(tmp_path), "--schedule.updates", "2",
                           "--schedule.eval-every", "0", "--eval.at-end", "False", *TINY],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "hopper-medium-tiny_dema_paper_s0" / "model.safetensors").is_file()
    assert not (tmp_path / "hopper-medium-tiny_dema_paper_s0" / "eval.json").exists()
