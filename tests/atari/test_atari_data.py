"""Collected Atari data in the DQN-replay layout: read back unchanged, DT's sampling, bad input."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest

from dema.data.formats.dqn_replay_sampling import plan, sample_dqn_replay
from dema.cli import main
from dema.data.formats.dqn_replay import replay_logs
from dema.data.load import load_dataset


def test_collected_breakout_reads_back_as_dqn_replay(breakout_replay):
    logs = breakout_replay / "1" / "replay_logs"
    assert replay_logs(breakout_replay) == logs
    data = load_dataset(breakout_replay)  # the game folder, as dema data / dema train take it
    meta = json.loads((breakout_replay / "dema_collect.json").read_text())
    assert len(data) == meta["transitions"] >= 300 and data.format == "dqn-replay"
    assert data.observations.shape[1:] == (84, 84) and data.observations.dtype == np.uint8
    assert data.metadata["game"] == "Breakout" and data.n_actions == 4 and data.actions.max() < 4
    assert len(data.metadata["checkpoints"]) == -(-len(data) // 120)  # capacity 120
    assert [level["epsilon"] for level in meta["levels"]] == [0.1, 1.0]
    # the returns written are the returns read (episodes cut by a checkpoint end are continued as timeouts)
    assert data.rewards.sum() == pytest.approx(sum(sum(level["returns"]) for level in meta["levels"]))


def test_dt_sampling_takes_whole_episodes_from_buffers(breakout_replay):
    logs = breakout_replay / "1" / "replay_logs"
    budgets = plan(logs, 150, trajectories_per_buffer=0, seed=0)
    assert budgets and set(budgets) <= {0, 1, 2, 3}
    data = sample_dqn_replay(breakout_replay, 150, trajectories_per_buffer=0, seed=0)
    assert len(data) == sum(budgets.values()) and data.metadata["sampling"] == "dt-create-dataset"
    assert data.terminals[-1] or data.timeouts[-1]


def test_dema_data_reads_a_game_folder(breakout_replay, capsys):
    assert main(["data", str(breakout_replay), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["transitions"] >= 300


def _copy(folder, tmp_path):
    target = tmp_path / "Breakout"
    shutil.copytree(folder, target)
    return target, target / "1" / "replay_logs"


def _train(folder, tmp_path):
    return main(["train", "--dataset", str(folder), "--runs-dir", str(tmp_path / "runs"), "--progress", "False",
                 "--schedule.updates", "1"])


@pytest.mark.parametrize("damage, message", [
    ("missing", "missing"),
    ("lengths", "stores of different sizes"),
    ("gzip", "truncated or corrupt"),
])
def test_damaged_replay_is_one_line_and_exit_2(breakout_replay, tmp_path, capsys, damage, message):
    folder, logs = _copy(breakout_replay, tmp_path)
    if damage == "missing":
        (logs / "$store$_reward_ckpt.1.gz").unlink()
    elif damage == "lengths":
        with gzip.open(logs / "$store$_action_ckpt.1.gz", "wb") as handle:
            np.save(handle, np.zeros(7, np.int32))
    else:
        (logs / "$store$_observation_ckpt.0.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    assert _train(folder, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # nothing written


def test_unknown_game_and_wrong_frames_are_refused(breakout_replay, tmp_path, capsys):
    folder, logs = _copy(breakout_replay, tmp_path)
    unknown = folder.rename(tmp_path / "Tetris")
    assert _train(unknown, tmp_path) == 2  # no preset: the game gives the preset
    err = capsys.readouterr().err.strip()
    assert "no preset for dataset" in err and len(err.splitlines()) == 1
    assert main(["train", "--dataset", str(unknown), "--preset", "atari", "--runs-dir", str(tmp_path / "runs"),
                 "--progress", "False", "--schedule.updates", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot tell which environment" in err and len(err.splitlines()) == 1

    folder, logs = _copy(breakout_replay, tmp_path / "second")
    for ckpt in range(len(list(logs.glob("$store$_observation_ckpt.*.gz")))):
        path = logs / f"$store$_observation_ckpt.{ckpt}.gz"
        with gzip.open(path, "rb") as handle:
            frames = np.load(handle)
        with gzip.open(path, "wb") as handle:
            np.save(handle, frames[:, :80, :80].copy())
    assert _train(folder, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert "(80, 80)" in err and "84x84" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_dema_collect_scripted_command(tmp_path, capsys):
    out = tmp_path / "atari"
    assert main(["collect", "breakout", "scripted", "--steps", "60", "--epsilons", "1", "--out", str(out)]) == 0
    assert f"wrote {out / 'Breakout'}" in capsys.readouterr().out
    assert main(["collect", "breakout", "scripted", "--steps", "60", "--out", str(out)]) == 2  # exists: refused
    assert "already holds a replay" in capsys.readouterr().err
    assert main(["collect", "qbert", "scripted", "--out", str(tmp_path / "q")]) == 2  # no controller for Qbert
    assert "controllers for Pong, Breakout" in capsys.readouterr().err


def test_rnn_like_batches_of_whole_episodes_that_cannot_fit_are_refused(breakout_replay, tmp_path, capsys,
                                                                        monkeypatch):
    import dema.data.training as training

    monkeypatch.setattr(training, "MAX_TRAJECTORY_BATCH_BYTES", 2**20)  # 1 MiB: the tiny episodes exceed it
    assert main(["train", "--model", "dema-rnn", "--dataset", str(breakout_replay), "--runs-dir", str(tmp_path / "runs"),
                 "--progress", "False", "--schedule.updates", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "whole episodes" in err and "--optim.batch-size" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()
