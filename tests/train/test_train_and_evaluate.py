"""The one road from a config to a scored run (`dema.train.pipeline.train_and_evaluate`), and the one
home of train_state.pt (`dema.run.checkpoint`)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

import dema
from dema.run import RunDir
from dema.run.checkpoint import read_train_state, training_time
from dema.train.pipeline import train_and_evaluate

from train_helpers import tiny_config


def test_scores_the_final_weights_and_writes_eval_json_only_when_asked(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path, updates=4)  # eval.at_end False
    said = []
    result, report = train_and_evaluate(config, log=said.append)
    run = RunDir(result.run_dir)
    assert report is None and not run.eval_report.is_file()  # eval.at_end False: nothing scored

    result, report = train_and_evaluate(config, resume=True, score=True, checkpoints=("final",), log=said.append)
    assert result.step == 4 and report is not None
    assert json.loads(run.eval_report.read_text())["normalized_mean"] == report["normalized_mean"]
    assert report["best_checkpoint"] is None  # only the final weights were asked for
    assert report["training"] == training_time(run) and report["training"]["step"] == 4
    assert any(line.startswith("evaluating 2 episodes") for line in said), said


def test_a_run_stopped_before_its_last_update_is_not_scored(tiny_dataset, tmp_path, monkeypatch):
    from dema.train import pipeline

    config = tiny_config(tiny_dataset, tmp_path)
    monkeypatch.setattr(pipeline, "train", lambda c, resume, log: pipeline.TrainResult(
        Path(c.run_dir()), 2, 0.0, 0.0, None, 0))  # as if stopped at update 2 of 6
    Path(config.run_dir()).mkdir(parents=True)
    _, report = train_and_evaluate(config, score=True, log=lambda line: None)
    assert report is None and not RunDir(config.run_dir()).eval_report.is_file()


def test_a_resume_records_the_config_it_was_resumed_with(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path, updates=2)
    train_and_evaluate(config, log=lambda line: None)
    longer = dataclasses.replace(config, schedule=dataclasses.replace(config.schedule, updates=4))
    result, _ = train_and_evaluate(longer, resume=True, log=lambda line: None)
    assert json.loads(RunDir(result.run_dir).config.read_text())["schedule"]["updates"] == 4
    assert read_train_state(RunDir(result.run_dir).train_state)["step"] == 4


def test_damage_is_named_by_the_one_reader(tmp_path):
    from dema.errors import DemaError

    (tmp_path / "train_state.pt").write_bytes(b"garbage")
    with pytest.raises(DemaError, match="train_state.pt is damaged"):
        read_train_state(tmp_path / "train_state.pt")
    assert training_time(RunDir(tmp_path)) is None  # eval.json goes on without it


def test_only_run_checkpoint_opens_train_state_files():
    """Every reader of train_state.pt goes through dema.run.checkpoint (verified, one format)."""
    package = Path(dema.__file__).parent
    opening = [str(path.relative_to(package)) for path in package.rglob("*.py")
               if re.search(r"torch\.(load|save)\(", path.read_text()) and "train_state" in path.read_text()]
    assert opening == ["run/checkpoint.py"], opening
