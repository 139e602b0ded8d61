"""Issue 27: `dema export` and `dema eval --runtime onnx` on bad input: one line naming the problem and
the fix, exit 2, the run directory unchanged."""

from __future__ import annotations

import pytest

from corpus import copy_run, dema, one_error_line, snapshot

pytest.importorskip("onnx")


def test_a_run_without_weights(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    (run / "model.safetensors").unlink()
    before = snapshot(run)
    code, _, err = dema(capsys, "export", run)
    assert code == 2, err
    assert "model.safetensors does not exist" in one_error_line(err)
    assert snapshot(run) == before


def test_a_folder_that_is_not_a_run(tmp_path, capsys):
    code, _, err = dema(capsys, "export", tmp_path)
    assert code == 2 and "is not a trained run" in one_error_line(err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, words", [
    (["--format", "tflite"], "unknown format 'tflite'; dema export writes onnx"),
    (["--out", "model.json"], "is written beside it as .json"),
    (["--checkpoint", "best"], "best.safetensors does not exist"),
])
def test_options_it_cannot_follow(finished_run, tmp_path, capsys, argv, words):
    run = copy_run(finished_run, tmp_path / "run")
    if "best" in argv:
        (run / "best.safetensors").unlink()
    before = snapshot(run)
    code, _, err = dema(capsys, "export", run, *argv)
    assert code == 2, err
    assert words in one_error_line(err)
    assert snapshot(run) == before


@pytest.mark.parametrize("argv, words", [
    (["--runtime", "tensorrt"], "unknown runtime 'tensorrt'; choose from torch, onnx"),
])
def test_eval_with_a_runtime_it_does_not_have(finished_run, tmp_path, capsys, argv, words):
    run = copy_run(finished_run, tmp_path / "run")
    before = snapshot(run)
    code, _, err = dema(capsys, "eval", run, "--episodes", "1", *argv)
    assert code == 2, err
    assert words in one_error_line(err)
    assert snapshot(run) == before


def test_export_writes_the_model_and_its_description(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    before = snapshot(run)
    code, out, err = dema(capsys, "export", run, "--out", tmp_path / "deploy" / "dt.onnx")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "deploy").iterdir()) == ["dt.json", "dt.onnx"]
    assert snapshot(run) == before  # --out elsewhere: the run directory is read, not written
