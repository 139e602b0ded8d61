"""`dema continue`: a finished run trained on in a copy is the same run trained longer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dema.cli import main as dema
from dema.experiments.continuation import _in_standard_errors
from test_train_cli import TINY  # pytest puts this folder on sys.path (no __init__.py)


def _train(dataset: Path, runs: Path, updates: int) -> Path:
    assert dema(["train", "--model", "dema", "--dataset", str(dataset), "--protocol", "cpu-short",
                 "--runs-dir", str(runs), "--schedule.updates", str(updates), "--schedule.eval-every", "2",
                 *TINY]) == 0
    return runs / "hopper-medium-tiny_dema_cpu-short_s0"


def test_a_continued_copy_equals_a_longer_run_and_the_original_stays(tiny_dataset, tmp_path, capsys):
    original = _train(tiny_dataset, tmp_path / "short", updates=4)
    longer = _train(tiny_dataset, tmp_path / "long", updates=8)
    before = (original / "eval.json").read_bytes()
    page = tmp_path / "PAGE.md"
    page.write_text("intro\n<!-- continue_runs -->\nold\n<!-- end continue_runs -->\nafter\n")
    figure = tmp_path / "figures" / "continued.png"
    into = tmp_path / "continued"
    capsys.readouterr()

    assert dema(["continue", str(tmp_path / "short"), original.name, "--updates", "8", "--into", str(into),
                 "--page", str(page), "--figure", str(figure)]) == 0
    copy = into / original.name
    assert (original / "eval.json").read_bytes() == before  # the original run is not touched
    assert json.loads((copy / "eval.json").read_text())["checkpoint_step"] == 8
    ours, reference = load_file(copy / "model.safetensors"), load_file(longer / "model.safetensors")
    assert ours.keys() == reference.keys()
    assert all(torch.equal(ours[k], reference[k]) for k in ours)  # 4 + 4 updates = 8 updates, bit for bit
    text = page.read_text()
    assert text.startswith("intro\n<!-- continue_runs -->\n| run | final at 4 | final at 8 | change (in standard")
    assert "runs the final score moved by less than 2 standard errors from 4 to 8 updates" in text
    assert text.endswith("<!-- end continue_runs -->\nafter\n") and "old" not in text
    assert f"| {original.name} |" in text and figure.stat().st_size > 0

    capsys.readouterr()
    records = tmp_path / "results" / "continued"
    assert dema(["continue", str(tmp_path / "short"), original.name, "--updates", "8", "--into", str(into),
                 "--records", str(records)]) == 0
    assert "continued to 8 already" in capsys.readouterr().out  # a rerun skips finished continuations

    # the records alone give the same table (a clean clone has no run directories)
    shutil.rmtree(into)
    again = tmp_path / "AGAIN.md"
    again.write_text("<!-- continue_runs -->\n<!-- end continue_runs -->\n")
    assert dema(["continue", "--from-records", str(records), "--page", str(again)]) == 0
    assert again.read_text().split("<!-- continue_runs -->")[1] == text.split("<!-- continue_runs -->")[1].replace(
        "after\n", "")
    (records / "broken.json").write_text("{")
    assert dema(["continue", "--from-records", str(records)]) == 2
    assert "broken.json" in capsys.readouterr().err


def test_refuses_runs_it_cannot_continue_exactly(tiny_dataset, tmp_path, capsys):
    original = _train(tiny_dataset, tmp_path / "runs", updates=2)
    decaying = shutil.copytree(original, tmp_path / "runs" / "decaying")
    config = json.loads((decaying / "config.json").read_text())
    config["optim"]["decay_steps"] = 10
    (decaying / "config.json").write_text(json.dumps(config))
    unfinished = shutil.copytree(original, tmp_path / "runs" / "unfinished")
    (unfinished / "eval.json").unlink()
    args = ["--into", str(tmp_path / "continued")]
    assert dema(["continue", str(tmp_path / "runs"), "decaying", "--updates", "4", *args]) == 2
    assert "its learning rate decays" in capsys.readouterr().err
    assert dema(["continue", str(tmp_path / "runs"), "unfinished", "--updates", "4", *args]) == 2
    assert "not a finished run" in capsys.readouterr().err
    assert dema(["continue", str(tmp_path / "runs"), original.name, "--updates", "2", *args]) == 2
    assert "already has 2" in capsys.readouterr().err
    assert dema(["continue", str(tmp_path / "runs"), original.name]) == 2
    assert "--updates N --into DIR, or --from-records DIR" in capsys.readouterr().err
    assert not (tmp_path / "continued" / "decaying").exists()


def test_a_change_is_measured_in_standard_errors_of_the_difference():
    row = {"final": ((77.3, 10.0), (71.7, 16.0)), "episodes": 20}
    assert _in_standard_errors(row) == pytest.approx(-5.6 / (100 / 20 + 256 / 20) ** 0.5)
