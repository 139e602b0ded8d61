"""`dema demo --quick --json`: the main job's pipeline end to end (both models, table, plot, JSON)."""

from __future__ import annotations

import json

from dema.cli import main


def test_demo_quick_json(tiny_dataset, tmp_path, capsys):
    assert main(["demo", "--quick", "--json", "--threads", "1", "--dataset", str(tiny_dataset),
                 "--out", str(tmp_path / "demo")]) == 0
    report = json.loads(capsys.readouterr().out)
    for model in ("dema", "dt"):
        row = report[model]
        for key in ("normalized_mean", "params", "train_step_ms", "act_ms"):
            assert isinstance(row[key], (int, float)), (model, key)
        assert row["updates"] == 4 and row["episodes"] == 1 and row["act_ms"] > 0
    assert report["dema"]["params"] < report["dt"]["params"]  # the paper's point: ~1/4 of DT's at this preset
    assert (tmp_path / "demo" / "learning_curves.png").stat().st_size > 10_000
    assert (tmp_path / "demo" / "dema" / "eval.json").is_file()


def test_demo_updates_option_keeps_the_protocol_proportions(tiny_dataset, tmp_path):
    from argparse import Namespace

    from dema.commands.demo import demo_config

    args = Namespace(dataset=str(tiny_dataset), quick=False, updates=200, episodes=3, seed=1, threads=1)
    config = demo_config("dt", args, tmp_path)
    assert (config.schedule.updates, config.optim.warmup_steps, config.schedule.eval_every) == (200, 20, 50)
    assert config.eval.episodes == 3 and config.eval.targets == (3600.0,) and config.protocol == "demo"
    assert config.preset == "hopper-medium-replay" and config.optim.lr == 1e-4 and config.seed == 1
    default = demo_config("dema", Namespace(**{**vars(args), "updates": None, "episodes": None}), tmp_path)
    assert (default.schedule.updates, default.eval.episodes) == (500, 10)  # protocol-demo.json
