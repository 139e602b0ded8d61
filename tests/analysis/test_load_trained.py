"""One loader for the analysis commands: every unusable run directory is one line and exit 2."""

from __future__ import annotations

import pytest

from dema.analysis.runs import load_trained
from dema.cli import main
from dema.errors import DemaError


def _copy_run(src, dst, weights: bytes | None):
    dst.mkdir()
    for name in ("config.json", "normalization.json"):
        (dst / name).write_bytes((src / name).read_bytes())
    if weights is not None:
        (dst / "model.safetensors").write_bytes(weights)
    return dst


def test_load_trained_names_the_problem(tiny_dema_run, tiny_dt_run, tmp_path):
    run, policy = load_trained(tiny_dema_run)
    assert not policy.training and run.config.model_name == "dema"
    with pytest.raises(DemaError, match="not a directory"):
        load_trained(tmp_path / "nowhere")
    with pytest.raises(DemaError, match="not a trained run"):
        load_trained(tmp_path)
    # missing, corrupt or another model's weights: a DemaError naming the file (the wording is
    # load_policy's when it has its own, else load_trained's "cannot load the checkpoint")
    for name, weights in (("no-weights", None), ("corrupt", b"\x00" * 64),
                          ("mismatch", (tiny_dt_run / "model.safetensors").read_bytes())):
        with pytest.raises(DemaError, match=f"{name}/model.safetensors"):
            load_trained(_copy_run(tiny_dema_run, tmp_path / name, weights))


def test_attention_command_refuses_a_corrupt_checkpoint(tiny_dema_run, tmp_path, capsys):
    broken = _copy_run(tiny_dema_run, tmp_path / "broken", b"garbage")
    assert main(["attention", str(broken), "--out", str(tmp_path / "att")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dema attention: error:") and "broken/model.safetensors" in err and err.count("\n") == 1
