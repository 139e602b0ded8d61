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
    _check_gif(tmp_path / "demo", report)


def _check_gif(out, report):
    """DeMa's best episode beside the learning curves, where MuJoCo renders off-screen (else no GIF)."""
    from PIL import Image

    from dema.commands.demo import GIF_SIZE, gif_problem

    gif = out / "dema_best_episode.gif"
    if gif_problem():
        assert report["setup"]["gif"] is None and not gif.exists()
        return
    assert report["setup"]["gif"] == str(gif)
    evaluation = json.loads((out / "dema" / "eval.json").read_text())["per_target"][0]
    with Image.open(gif) as image:  # 1 episode of at most 20 steps: the reset, every 5th step, the last
        length = evaluation["lengths"][0]
        assert image.n_frames == 1 + length // 5 + (1 if length % 5 else 0) and image.size == (GIF_SIZE, GIF_SIZE)
    assert not list(out.glob("final_*.gif"))  # renamed, not copied


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
