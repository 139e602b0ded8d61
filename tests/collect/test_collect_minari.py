"""`dema collect ENV RECIPE --format minari` (issue 26): the collection written by minari's own writer,
read back by `minari.load_dataset` with the arrays of the D4RL file of the same recipe and seed, the
metadata Minari expects, readable by `minari show`; bad requests are one line, exit 2, nothing written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from dema.envs import ENVS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "robustness"))
from corpus import dema  # noqa: E402

minari = pytest.importorskip("minari", reason="minari not installed (pip install -e '.[minari]')")

# medium-replay: six stages (random, noisy and plain policies), so the episodes of every stage are compared
COLLECTION = ["hopper", "medium-replay", "--steps", "600", "--seed", "3", "--num-envs", "4", "--no-progress"]


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "minari"


def test_minari_format_round_trips_with_the_arrays_of_the_d4rl_file(root, capsys):
    code, _, err = dema(capsys, "collect", *COLLECTION, "--out", "d4rl.hdf5")
    assert code == 0, err
    code, out, err = dema(capsys, "collect", *COLLECTION, "--format", "minari", "--id", "test/hopper/mr-v0")
    assert code == 0, err
    assert "wrote Minari dataset test/hopper/mr-v0" in out
    with h5py.File("d4rl.hdf5") as file:
        d4rl = {key: file[key][()] for key in file if key != "metadata"}
    dataset = minari.load_dataset("test/hopper/mr-v0")
    episodes = list(dataset.iterate_episodes())
    cat = lambda f: np.concatenate([f(e) for e in episodes])  # noqa: E731
    np.testing.assert_array_equal(cat(lambda e: e.observations[:-1]).astype(np.float32), d4rl["observations"])
    np.testing.assert_array_equal(cat(lambda e: e.observations[1:]).astype(np.float32), d4rl["next_observations"])
    np.testing.assert_array_equal(cat(lambda e: e.actions).astype(np.float32), d4rl["actions"])
    np.testing.assert_array_equal(cat(lambda e: e.rewards).astype(np.float32), d4rl["rewards"])
    np.testing.assert_array_equal(cat(lambda e: e.terminations), d4rl["terminals"])
    np.testing.assert_array_equal(cat(lambda e: e.truncations), d4rl["timeouts"])

    meta = dataset.storage.metadata
    assert dataset.spec.env_spec.id == "Hopper-v5" and dataset.spec.env_spec.max_episode_steps == 1000
    assert meta["algorithm_name"].startswith("dema collect medium-replay: random x 60; a2c-Hopper")
    assert (meta["ref_min_score"], meta["ref_max_score"]) == ENVS["hopper"].measured_ref_scores
    assert meta["author"] == {"dema"} and "dema" in meta["code_permalink"] and "mujoco" in " ".join(meta["requirements"])
    assert meta["dema_collect"]["seed"] == 3 and meta["dema_collect"]["command"].endswith("--id test/hopper/mr-v0")
    assert [p.name for p in root.iterdir()] == ["test"]  # no work folder left behind

    from minari.cli import app
    from typer.testing import CliRunner

    shown = CliRunner().invoke(app, ["show", "test/hopper/mr-v0"])
    assert shown.exit_code == 0 and "600" in shown.output, shown.output

    # and dema reads it by its id, normalised with the reference scores it carries
    code, out, err = dema(capsys, "data", "test/hopper/mr-v0", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["transitions"] == 600 and info["normalized_with"] == "dataset"


@pytest.mark.parametrize("extra, words", [
    (["--format", "parquet"], "--format parquet"),
    (["--format", "minari", "--id", "no-version"], "not a Minari dataset id"),
    (["--format", "minari", "--out", "x.hdf5"], "--out names a D4RL file"),
    (["--id", "test/hopper/x-v0"], "add --format minari"),
])
def test_a_bad_request_is_one_line_and_writes_nothing(root, capsys, extra, words):
    code, out, err = dema(capsys, "collect", *COLLECTION, *extra)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not root.exists() and not Path("x.hdf5").exists() and not Path("datasets").exists()


def test_an_existing_id_is_kept_unless_overwrite(root, capsys):
    small = ["hopper", "random", "--steps", "40", "--num-envs", "2", "--no-progress", "--format", "minari"]
    assert dema(capsys, "collect", *small)[0] == 0
    before = (root / "dema/hopper/random-v0/data/main_data.hdf5").read_bytes()
    code, _, err = dema(capsys, "collect", *small, "--seed", "1")
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert (root / "dema/hopper/random-v0/data/main_data.hdf5").read_bytes() == before
    assert dema(capsys, "collect", *small, "--seed", "1", "--overwrite")[0] == 0
    assert minari.load_dataset("dema/hopper/random-v0").storage.metadata["dema_collect"]["seed"] == 1
    assert sorted(p.name for p in (root / "dema/hopper").iterdir()) == ["namespace_metadata.json", "random-v0"]
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no work folder, no old copy left


def test_reference_episodes_are_whole_and_the_same_as_one_environment_playing_them(root):
    """The v5 reference scores (`dema collect ENV reference-scores`) average whole episodes: copy i of the
    vector plays its episodes one after the other from reset seed seed + i, exactly as a single
    environment does (a deterministic policy, so the returns must be equal)."""
    import gymnasium as gym

    from dema.data.collect.recipes import resolve_policy
    from dema.data.collect.reference import episode_returns

    spec = ENVS["hopper"]
    policy = resolve_policy(spec, "ppo_old")
    got = episode_returns(spec, policy, episodes=5, num_envs=2, seed=7, deterministic=True)
    expected = []
    for copy, count in ((0, 3), (1, 2)):  # 5 episodes over 2 copies: 3 and 2
        env = gym.make(spec.gym_id)
        obs, _ = env.reset(seed=7 + copy)
        for _ in range(count):
            total, t, done = 0.0, 0, False
            while not done:
                action = np.clip(policy.act(obs[None], np.array([t]), None, True)[0], -1, 1)
                obs, reward, term, trunc, _ = env.step(action.astype(np.float32))
                total, t, done = total + reward, t + 1, term or trunc
            expected.append(total)
            obs, _ = env.reset()
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_the_reference_scores_command_prints_every_policy_and_the_best(root, capsys):
    code, out, err = dema(capsys, "collect", "hopper", "reference-scores", "--ref-episodes", "2", "--num-envs", "2")
    assert code == 0, err
    for algo in ("random", "a2c", "ars", "ppo", "ppo_old", "sac", "tqc", "trpo"):
        assert f"Hopper-v5 {algo} " in out
    assert "reference scores of Hopper-v5 (2 episodes each" in out and "best shipped policy" in out
