"""`dema eval --video` on Atari: the frames the policy sees, recorded without changing a score."""

from __future__ import annotations

import json

import numpy as np

from dema.cli import main

TINY = ["--model.n-layer", "1", "--model.embed-dim", "16", "--model.d-model", "16", "--model.d-state", "4",
        "--model.context-len", "4", "--optim.batch-size", "2", "--schedule.updates", "1", "--schedule.log-every", "1",
        "--schedule.checkpoint-every", "1", "--schedule.eval-every", "0", "--eval.at-end", "False",
        "--progress", "False", "--threads", "1"]


def test_atari_episodes_with_and_without_video(breakout_replay, tmp_path, capsys):
    """Actions are sampled (a seeded generator per round): the same returns and lengths with and without
    --video, and the video holds every decision's frame (Atari keeps them all: 15 a second)."""
    import imageio.v2 as imageio

    assert main(["train", "--model", "dema", "--dataset", str(breakout_replay), "--runs-dir", str(tmp_path),
                 "--run-name", "r", *TINY]) == 0
    run = tmp_path / "r"
    scores = []
    for extra in ([], ["--video", "2"]):
        assert main(["eval", str(run), "--checkpoint", "final", "--episodes", "3", "--max-episode-steps", "30",
                     *extra]) == 0
        scores.append(json.loads((run / "eval.json").read_text()))
    capsys.readouterr()
    plain, recorded = scores
    for a, b in zip(plain["per_target"], recorded["per_target"]):
        assert a["returns"] == b["returns"] and a["lengths"] == b["lengths"]
    for j, shown in enumerate(recorded["videos"]):
        assert shown["length"] == recorded["per_target"][0]["lengths"][j]
        with imageio.get_reader(run / shown["file"]) as reader:
            frames = [np.asarray(frame) for frame in reader]
            assert reader.get_meta_data()["fps"] == 15
        assert len(frames) == shown["length"] + 1 and frames[0].shape == (420, 420, 3)  # 84 x 5, the reset too
        grey = frames[-1][100:]  # below the text line: the game's grey frame, R = G = B up to the codec
        assert np.abs(grey[..., 0].astype(int) - grey[..., 2]).max() < 20
