"""`dema collect` end to end on tiny budgets: file layout, episode ends, metadata, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from dema.cli import main as dema
from dema.data.collect.recipes import PACKAGED_POLICY_DIR
from dema.data.episodes import episode_returns

D4RL_KEYS = {"observations", "actions", "rewards", "terminals", "timeouts", "next_observations"}


def _read(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with h5py.File(path, "r") as f:
        data = {k: f[k][()] for k in f if k != "metadata"}
        meta = dict(f["metadata"].attrs)
    return data, meta


def _check_layout(data: dict[str, np.ndarray], steps: int, obs_dim: int, act_dim: int, num_streams: int) -> None:
    assert set(data) == D4RL_KEYS
    assert all(len(v) == steps for v in data.values())
    assert data["observations"].shape == (steps, obs_dim) and data["observations"].dtype == np.float32
    assert data["actions"].shape == (steps, act_dim) and data["actions"].dtype == np.float32
    assert data["terminals"].dtype == bool and data["timeouts"].dtype == bool
    assert np.abs(data["actions"]).max() <= 1.0
    ends = data["terminals"] | data["timeouts"]
    assert not (data["terminals"] & data["timeouts"]).any(), "one end marker per episode"
    assert ends[-1], "the last episode must end"
    # Inside an episode, the next observation is the following row's observation.
    inner = np.flatnonzero(~ends)
    np.testing.assert_array_equal(data["next_observations"][inner], data["observations"][inner + 1])
    # Each env stream (steps // N rows, the first steps % N one more) ends with an episode end: a
    # terminal, or the timeout marking the episode the budget cut. No episode exceeds the time limit.
    per_stream = np.full(num_streams, steps // num_streams)
    per_stream[: steps % num_streams] += 1
    assert ends[np.cumsum(per_stream) - 1].all()
    starts = np.concatenate([[0], np.flatnonzero(ends)[:-1] + 1])
    lengths = np.flatnonzero(ends) - starts + 1
    assert lengths.max() <= 1000


def test_random_recipe_end_to_end(tmp_path, capsys):
    out = tmp_path / "hopper-random.hdf5"
    argv = ["collect", "hopper", "random", "--steps", "300", "--num-envs", "3", "--seed", "5",
            "--out", str(out), "--no-progress"]
    assert dema(argv) == 0
    assert "wrote" in capsys.readouterr().out
    data, meta = _read(out)
    _check_layout(data, 300, 11, 3, num_streams=3)
    assert meta["env_id"] == "Hopper-v5" and meta["recipe"] == "random" and meta["seed"] == 5
    assert meta["steps"] == 300 and meta["num_envs"] == 3
    versions = json.loads(meta["versions"])
    assert {"gymnasium", "mujoco", "numpy", "h5py"} <= set(versions)
    returns = episode_returns(data["rewards"], data["terminals"], data["timeouts"])
    assert meta["episodes"] == len(returns)
    assert meta["return_mean"] == pytest.approx(returns.mean(), rel=1e-5)
    assert meta["return_max"] == pytest.approx(returns.max(), rel=1e-5)
    assert "dema collect hopper random" in meta["command"]
    # Same seed, same data (the file is reproducible).
    again = tmp_path / "again.hdf5"
    assert dema(argv[:-3] + ["--out", str(again), "--no-progress"]) == 0
    np.testing.assert_array_equal(_read(again)[0]["observations"], data["observations"])


def test_refuses_to_overwrite_and_overwrites_when_asked(tmp_path, capsys):
    out = tmp_path / "d.hdf5"
    out.write_bytes(b"precious")
    argv = ["collect", "hopper", "random", "--steps", "50", "--out", str(out), "--no-progress"]
    assert dema(argv) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err and "Traceback" not in err
    assert out.read_bytes() == b"precious"
    assert dema(argv + ["--overwrite"]) == 0
    assert len(_read(out)[0]["rewards"]) == 50


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    """Ctrl-C while the file is being written: nothing under the final name, no temporary left."""
    out = tmp_path / "d.hdf5"
    real = h5py.Group.create_dataset
    calls = {"n": 0}

    def flaky(self, name, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", flaky)
    argv = ["collect", "hopper", "random", "--steps", "40", "--out", str(out), "--no-progress"]
    assert dema(argv) == 130
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    assert dema(["collect", "ant", "medium", "--out", str(tmp_path / "x.hdf5")]) == 2
    assert "unknown environment" in capsys.readouterr().err
    assert dema(["collect", "hopper", "median", "--out", str(tmp_path / "x.hdf5")]) == 2
    assert "unknown recipe" in capsys.readouterr().err
    assert dema(["collect", "hopper", "medium", "--policy-dir", str(tmp_path), "--steps", "10",
                 "--out", str(tmp_path / "x.hdf5")]) == 2
    assert "--policy-dir" in capsys.readouterr().err
    assert not (tmp_path / "x.hdf5").exists()


def test_medium_replay_is_marked_as_an_approximation(tmp_path):
    out = tmp_path / "mr.hdf5"
    # --policy-dir given explicitly (the shipped folder): the option itself is exercised here.
    assert dema(["collect", "walker2d", "medium-replay", "--steps", "600", "--num-envs", "2",
                 "--policy-dir", str(PACKAGED_POLICY_DIR), "--out", str(out), "--no-progress"]) == 0
    data, meta = _read(out)
    _check_layout(data, 600, 17, 6, num_streams=2)
    assert "approximation" in meta["approximation"]
    stages = json.loads(meta["stages"])
    assert [s["label"].split()[0] for s in stages][0] == "random"
    assert sum(s["steps"] for s in stages) == 600
    assert any(s["noise_std"] > 0 for s in stages)


def test_medium_expert_concatenates_medium_then_expert(tmp_path, monkeypatch):
    monkeypatch.delenv("DEMA_POLICY_DIR", raising=False)  # the default folder: the shipped policies
    out = tmp_path / "me.hdf5"
    assert dema(["collect", "hopper", "medium-expert", "--steps", "400", "--num-envs", "2",
                 "--out", str(out), "--no-progress"]) == 0
    data, meta = _read(out)
    _check_layout(data, 400, 11, 3, num_streams=4)  # two stages of two 100-step streams
    stages = json.loads(meta["stages"])
    assert [s["label"] for s in stages] == ["sac-Hopper stochastic", "tqc-Hopper stochastic"]
    assert "sha256" in stages[0]["source"]


def test_sb3_zip_as_policy(tmp_path):
    """--policy with an SB3 zip replaces the medium policy."""
    sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 not installed")
    import gymnasium as gym

    model = sb3.SAC("MlpPolicy", gym.make("Hopper-v5"), policy_kwargs={"net_arch": [8]}, seed=0, device="cpu")
    zip_path = tmp_path / "my-sac.zip"
    model.save(zip_path)
    out = tmp_path / "m.hdf5"
    assert dema(["collect", "hopper", "medium", "--steps", "100", "--num-envs", "2", "--policy", str(zip_path),
                 "--out", str(out), "--no-progress"]) == 0
    assert "my-sac stochastic" in _read(out)[1]["policy"]


def test_maze2d_controller_end_to_end(tmp_path):
    pytest.importorskip("gymnasium_robotics", reason="gymnasium-robotics not installed (pip install 'dema[maze]')")
    out = tmp_path / "umaze.hdf5"
    assert dema(["collect", "maze2d-umaze", "controller", "--steps", "700", "--num-envs", "2", "--ref-episodes", "2",
                 "--out", str(out), "--no-progress"]) == 0
    data, meta = _read(out)
    assert data["observations"].shape == (700, 6) and data["actions"].shape == (700, 2)
    assert not data["terminals"].any()  # PointMaze never terminates: episodes end at the time limit
    assert set(np.unique(data["rewards"])) <= {0.0, 1.0}
    assert meta["env_id"] == "PointMaze_UMaze-v3"
    assert meta["ref_max_score"] > meta["ref_min_score"]  # the controller beats random actions


def test_maze2d_controller_reaches_the_goal():
    """The noiseless waypoint controller reaches the goal in every umaze / medium episode tried."""
    pytest.importorskip("gymnasium_robotics", reason="gymnasium-robotics not installed")
    from dema.data.collect.maze import MAZES, _register, maze_rollout

    _register()
    for name in ("maze2d-umaze", "maze2d-medium"):
        spec = MAZES[name]
        data = maze_rollout(spec, "controller", 4 * spec.max_episode_steps, 4, seed=1, noise=0.0)
        returns = episode_returns(data["rewards"], data["terminals"], data["timeouts"])
        assert len(returns) == 4 and returns.min() > 0, (name, returns)
