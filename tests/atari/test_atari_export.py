"""Issue 27: an Atari policy (frames, sampled discrete actions) is not exported yet: `dema export` and
`dema eval --runtime onnx` refuse it in one line, exit 2, the run directory unchanged."""

from __future__ import annotations

import hashlib

import pytest

from dema.cli import main

pytest.importorskip("onnx")

TINY = ["--model.n-layer", "1", "--model.embed-dim", "16", "--model.d-model", "16", "--model.d-state", "4",
        "--model.context-len", "4", "--optim.batch-size", "4", "--optim.warmup-steps", "1", "--schedule.updates", "2",
        "--schedule.log-every", "1", "--schedule.checkpoint-every", "2", "--schedule.eval-every", "0",
        "--eval.at-end", "False", "--progress", "False", "--threads", "1"]


def _files(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file() and p.name != ".lock"}


def test_export_and_onnx_eval_refuse_an_atari_policy(breakout_replay, tmp_path, capsys):
    argv = ["train", "--model", "dema-rnn", "--dataset", str(breakout_replay), "--runs-dir", str(tmp_path), *TINY]
    assert main(argv) == 0
    run_dir = tmp_path / "Breakout_dema-rnn_paper_s0"
    before = _files(run_dir)
    for command, words in ((["export", str(run_dir)], "cannot be exported: it acts on frames"),
                           (["eval", str(run_dir), "--runtime", "onnx"], "--runtime onnx: ALE/Breakout-v5 acts on frames")):
        capsys.readouterr()
        assert main(command) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if ": error: " in line]
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in err, err
    assert _files(run_dir) == before
