"""Class 5, corrupt or partial files: weights and checkpoints are verified when read, a damaged latest
checkpoint falls back to the one before it, a full disk during a checkpoint is a clear error, and
eval.json is only written for a valid evaluation."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from corpus import copy_run, dema, flip_bytes, one_error_line, snapshot


def test_damaged_weights_never_score(finished_run, tmp_path, capsys):
    good_eval = (finished_run / "eval.json").read_text()
    weights = {k: v.clone() for k, v in load_file(str(finished_run / "model.safetensors")).items()}
    key = sorted(weights)[0]
    nan = {**weights, key: torch.full_like(weights[key], float("nan"))}
    damages = {
        "bytes overwritten": lambda p: flip_bytes(p),
        "truncated": lambda p: p.write_bytes(p.read_bytes()[:200]),
        "garbage": lambda p: p.write_bytes(b"not safetensors at all"),
        "NaN weights (no checksum)": lambda p: save_file(nan, str(p)),
        "weights of another model": lambda p: save_file({"x": torch.zeros(3)}, str(p)),
    }
    for case, damage in damages.items():
        run = copy_run(finished_run, tmp_path / case.replace(" ", "-"))
        damage(run / "model.safetensors")
        code, _, err = dema(capsys, "eval", run, "--episodes", "1")
        line = one_error_line(err)
        assert code == 2 and "model.safetensors" in line, (case, line)
        assert (run / "eval.json").read_text() == good_eval, case  # the good evaluation is kept
    # best.safetensors is verified as well
    run = copy_run(finished_run, tmp_path / "best")
    flip_bytes(run / "best.safetensors")
    code, _, err = dema(capsys, "eval", run, "--episodes", "1")
    assert code == 2 and "best.safetensors" in one_error_line(err)


def test_resume_repairs_damaged_weights_from_the_checkpoint(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    flip_bytes(run / "model.safetensors")
    code, out, err = dema(capsys, "train", "--resume", run)  # finished: nothing to train, repaired, evaluated
    assert code == 0, err
    assert "rewritten from the checkpoint at step 4" in out
    code, _, err = dema(capsys, "eval", run, "--episodes", "1")
    assert code == 0, err


def test_a_damaged_train_state_falls_back_to_the_previous_checkpoint_exactly(tiny_dataset, tmp_path):
    from dema.train.loop import train
    from train_helpers import tiny_config

    quiet = lambda *_: None  # noqa: E731
    config = tiny_config(tiny_dataset, tmp_path / "a", "dt", updates=6, checkpoint_every=2)
    straight = train(config, log=quiet)

    config_b = dataclasses.replace(config, runs_dir=str(tmp_path / "b"))
    train(config_b, stop_at=4, log=quiet)  # checkpoints at 2 and 4: train_state.prev.pt is step 2
    run = config_b.run_dir()
    assert torch.load(run / "train_state.prev.pt", weights_only=True)["step"] == 2
    (run / "train_state.pt").write_bytes((run / "train_state.pt").read_bytes()[:1000])  # truncated
    said = []
    resumed = train(config_b, resume=True, log=said.append)
    assert any("train_state.pt is damaged" in line and "step 2" in line for line in said), said
    for key, value in load_file(str(straight.run_dir / "model.safetensors")).items():
        assert torch.equal(value, load_file(str(resumed.run_dir / "model.safetensors"))[key]), key


def test_unusable_checkpoints_are_a_clear_error(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    (run / "train_state.pt").write_bytes(b"garbage")
    (run / "train_state.prev.pt").write_bytes((run / "train_state.prev.pt").read_bytes()[:500])
    code, _, err = dema(capsys, "train", "--resume", run, "--schedule.updates", "6")
    line = one_error_line(err)
    assert code == 2 and "train_state.pt is damaged" in line and "train_state.prev.pt is damaged" in line


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tiny_dataset, tmp_path, monkeypatch):
    from dema.errors import DemaError
    from dema.train.loop import train
    from train_helpers import tiny_config

    config = tiny_config(tiny_dataset, tmp_path, "dt", updates=6, checkpoint_every=2)
    save, calls = torch.save, {"n": 0}

    def fills_up(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the checkpoint at update 4
            raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0")
        return save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", fills_up)
    with pytest.raises(DemaError, match=r"cannot write .*train_state.pt.*update 4.*checkpoint \(step 2\) is kept"):
        train(config, log=lambda *_: None)
    monkeypatch.setattr(torch, "save", save)
    run = config.run_dir()
    assert torch.load(run / "train_state.pt", weights_only=True)["step"] == 2
    assert not [p.name for p in run.iterdir() if ".tmp-" in p.name]  # no temporary left behind
    assert train(config, resume=True, log=lambda *_: None).step == 6


def test_eval_json_is_written_only_for_a_valid_evaluation(finished_run, tmp_path, capsys, monkeypatch):
    import dema.evaluation.evaluate as evaluate

    run = copy_run(finished_run, tmp_path / "run")
    before = snapshot(run)
    real = evaluate.evaluate

    def nan_scores(*args, **kwargs):
        report = real(*args, **kwargs)
        return {**report, "return_mean": float("nan"), "normalized_mean": float("nan")}

    monkeypatch.setattr(evaluate, "evaluate", nan_scores)
    code, _, err = dema(capsys, "eval", run, "--episodes", "1")
    assert code == 2 and "not a number" in one_error_line(err)
    assert snapshot(run) == before
    from dema.errors import DemaError
    from dema.run import RunDir

    with pytest.raises(DemaError, match="was not written"):
        RunDir(run).write_eval({**json.loads((run / "eval.json").read_text()), "normalized_mean": float("nan")})
