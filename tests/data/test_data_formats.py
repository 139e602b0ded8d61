"""Every format reads back what was written; names, folders and ids resolve to the right reader."""

from __future__ import annotations

import numpy as np
import pytest
from data_factories import make_arrays, write_d4rl, write_dqn_replay, write_dt_pickle, write_minari

from dema.data.formats.dqn_replay import load_dqn_replay
from dema.data.load import load_dataset, resolve_id


def assert_same(ds, arrays, next_obs=True):
    np.testing.assert_array_equal(ds.observations, arrays["observations"])
    np.testing.assert_array_equal(ds.actions, arrays["actions"])
    np.testing.assert_array_equal(ds.rewards, arrays["rewards"])
    np.testing.assert_array_equal(ds.terminals, arrays["terminals"])
    np.testing.assert_array_equal(ds.timeouts, arrays["timeouts"])
    if next_obs:
        np.testing.assert_array_equal(ds.next_observations, arrays["next_observations"])


def test_d4rl_round_trip_with_metadata_attrs_and_datasets(tmp_path):
    arrays = make_arrays()
    path = write_d4rl(
        tmp_path / "x.hdf5", arrays, attrs={"env_id": "Hopper-v5", "seed": 3},
        meta_datasets={"algorithm": b"SAC", "policy/fc0/weight": np.zeros((100, 100))},
    )
    ds = load_dataset(path)
    assert ds.format == "d4rl" and ds.source == str(path)
    assert_same(ds, arrays)
    assert ds.metadata["env_id"] == "Hopper-v5" and ds.metadata["seed"] == 3
    assert ds.metadata["algorithm"] == "SAC"
    assert ds.metadata["policy/fc0/weight"].startswith("<array")  # big arrays summarised, not loaded
    assert [tuple(b) for b in ds.episode_bounds()] == [(0, 5), (5, 12), (12, 16)]
    np.testing.assert_allclose(ds.episode_returns(), [arrays["rewards"][s:e].sum() for s, e in [(0, 5), (5, 12), (12, 16)]], rtol=1e-6)


def test_d4rl_infos_and_column_shaped_rewards(tmp_path):
    arrays = make_arrays()
    arrays["rewards"] = arrays["rewards"][:, None]  # some writers store (N, 1)
    path = write_d4rl(tmp_path / "x.hdf5", arrays)
    import h5py

    with h5py.File(path, "a") as file:
        file.create_dataset("infos/qpos", data=np.ones((16, 6)))
    ds = load_dataset(path)
    assert ds.rewards.shape == (16,)
    assert ds.infos["qpos"].shape == (16, 6)


def test_dt_pickle_round_trip_terminals_and_dones(tmp_path):
    arrays = make_arrays()
    for key in ("terminals", "dones"):
        ds = load_dataset(write_dt_pickle(tmp_path / f"hopper-medium-{key}.pkl", arrays, done_key=key))
        assert ds.format == "dt-pickle"
        assert_same(ds, arrays)  # an episode not ending in a terminal is read as a timeout


def test_minari_round_trip(tmp_path):
    arrays = make_arrays()
    folder = write_minari(tmp_path, arrays)
    for path in (folder, folder / "data", folder / "data" / "main_data.hdf5"):
        ds = load_dataset(path)
        assert ds.format == "minari"
        assert ds.metadata["env_id"] == "Hopper-v5"
        assert_same(ds, arrays, next_obs=False)
        # Minari stores T+1 observations; next_observations are the shifted ones
        ends = ds.episode_bounds()[:, 1]
        np.testing.assert_array_equal(ds.next_observations[ends - 1], arrays["next_observations"][ends - 1])


def test_minari_dict_observations_flattened_in_sorted_key_order(tmp_path):
    arrays = make_arrays(obs_dim=6)
    folder = write_minari(tmp_path, arrays, dict_obs=True, metadata_in_data=False, env_id="PointMaze_UMaze-v3")
    ds = load_dataset(folder, env=None)
    assert ds.metadata["obs_keys"] == ["achieved_goal", "observation"]
    # achieved_goal was columns :2, observation 2: -> sorted order restores the original layout
    np.testing.assert_array_equal(ds.observations, arrays["observations"])


@pytest.mark.parametrize("n_steps", [30, 53])  # not full, and wrapped around (capacity 40)
def test_dqn_replay_time_order_and_invalid_range(tmp_path, n_steps):
    stream = write_dqn_replay(tmp_path / "Breakout" / "1" / "replay_logs", n_steps=n_steps, capacity=40)
    ds = load_dataset(tmp_path / "Breakout" / "1")
    assert ds.format == "dqn-replay" and ds.discrete and ds.n_actions == 4  # Breakout's minimal set
    # expected: the last `capacity` adds in time order, minus dopamine's invalid range at both ends
    first = max(0, n_steps - 40)
    times = np.arange(first, n_steps)
    invalid = {(stream["cursor"] - 1 + i) % 40 for i in range(5)}
    times = np.array([t for t in times if t % 40 not in invalid])
    np.testing.assert_array_equal(ds.observations, stream["observation"][times])
    np.testing.assert_array_equal(ds.actions, stream["action"][times])
    np.testing.assert_array_equal(ds.rewards, stream["reward"][times])
    np.testing.assert_array_equal(ds.terminals, stream["terminal"][times] != 0)
    assert ds.timeouts.sum() == (0 if ds.terminals[-1] else 1) and ds.timeouts[-1] != ds.terminals[-1]


def test_dqn_replay_max_transitions_keeps_whole_episodes(tmp_path):
    folder = tmp_path / "replay_logs"
    write_dqn_replay(folder, n_steps=60, capacity=100, ckpt=0, episode_len=7)
    write_dqn_replay(folder, n_steps=60, capacity=100, ckpt=1, episode_len=7, seed=1)
    full = load_dqn_replay(folder, n_actions=4)
    assert len(full) == 2 * 59 and full.metadata["checkpoints"] == [0, 1]
    part = load_dqn_replay(folder, max_transitions=30, n_actions=4)
    assert len(part) == 28 and part.terminals[-1]  # 4 whole episodes of 7, not 30 cut mid-episode
    np.testing.assert_array_equal(part.observations, full.observations[:28])


def test_id_resolution_search_path_and_versions(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    write_d4rl(b / "hopper-medium-replay-v5.hdf5", make_arrays())
    write_d4rl(b / "hopper-medium-replay-v2.hdf5", make_arrays(seed=1))
    write_dt_pickle(a / "walker2d-medium-v2.pkl", make_arrays(obs_dim=17, act_dim=6))
    monkeypatch.setenv("DEMA_DATA_PATH", f"{a}:{b}")
    monkeypatch.chdir(tmp_path)
    assert resolve_id("hopper-medium-replay") == b / "hopper-medium-replay-v5.hdf5"  # highest version
    assert resolve_id("hopper-medium-replay-v2") == b / "hopper-medium-replay-v2.hdf5"
    assert resolve_id("walker2d-medium-v2") == a / "walker2d-medium-v2.pkl"
    assert load_dataset("walker2d-medium-v2").format == "dt-pickle"
    # ./datasets is searched after DEMA_DATA_PATH; a versioned id also finds the unversioned name
    (tmp_path / "datasets").mkdir()
    write_d4rl(tmp_path / "datasets" / "halfcheetah-medium.hdf5", make_arrays(obs_dim=17, act_dim=6))
    assert resolve_id("halfcheetah-medium-v2") == tmp_path / "datasets" / "halfcheetah-medium.hdf5"


def test_reads_what_the_real_minari_package_writes(tmp_path, monkeypatch):
    """Fidelity check of the on-disk layout; runs where `minari` is installed (not a dependency)."""
    minari = pytest.importorskip("minari", reason="minari not installed (optional: only this check uses it)")
    import gymnasium as gym
    from minari.data_collector import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = gym.make("Hopper-v5", max_episode_steps=15)
    env.action_space.seed(0)
    episodes = []
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        ep = {"observations": [obs], "actions": [], "rewards": [], "terminations": [], "truncations": []}
        done = False
        while not done:
            action = env.action_space.sample()
            obs, reward, term, trunc, _ = env.step(action)
            for key, value in zip(("observations", "actions", "rewards", "terminations", "truncations"), (obs, action, reward, term, trunc)):
                ep[key].append(value)
            done = term or trunc
        episodes.append({k: np.array(v) for k, v in ep.items()})
    with pytest.warns(UserWarning):  # minari nags about missing author/description
        minari.create_dataset_from_buffers("test/hopper-random-v0", [EpisodeBuffer(**e) for e in episodes], env=env, algorithm_name="random", data_format="hdf5")

    ds = load_dataset(tmp_path / "test" / "hopper-random-v0")
    assert ds.format == "minari" and ds.metadata["env_id"] == "Hopper-v5"
    np.testing.assert_array_equal(ds.observations, np.concatenate([e["observations"][:-1] for e in episodes]).astype(np.float32))
    np.testing.assert_array_equal(ds.next_observations, np.concatenate([e["observations"][1:] for e in episodes]).astype(np.float32))
    np.testing.assert_allclose(ds.rewards, np.concatenate([e["rewards"] for e in episodes]), rtol=1e-6)
    np.testing.assert_array_equal(ds.terminals, np.concatenate([e["terminations"] for e in episodes]))
    np.testing.assert_array_equal(ds.timeouts, np.concatenate([e["truncations"] for e in episodes]))


def test_max_transitions_keeps_whole_episodes(tmp_path):
    arrays = make_arrays()  # episodes of 5, 7, 4
    path = write_d4rl(tmp_path / "x.hdf5", arrays)
    ds = load_dataset(path, max_transitions=14)
    assert len(ds) == 12 and ds.metadata["max_transitions"] == 14
    np.testing.assert_array_equal(ds.next_observations, arrays["next_observations"][:12])
    ds = load_dataset(path, max_transitions=3)  # not even one episode fits: cut, ended by a timeout
    assert len(ds) == 3 and ds.timeouts[-1]


def test_dqn_replay_refuses_a_read_that_cannot_fit(tmp_path, monkeypatch):
    import dema.data.formats.dqn_replay as dqn
    from dema.errors import DataError

    folder = tmp_path / "Pong" / "replay_logs"
    write_dqn_replay(folder, n_steps=30, capacity=40)
    monkeypatch.setattr(dqn, "MAX_BYTES", 100)  # 30 frames of 30 bytes
    with pytest.raises(DataError, match="needs 0.0 GiB of frames.*Fix: pass max_transitions"):
        load_dataset(folder)
    assert len(load_dataset(folder, max_transitions=14)) == 14  # two whole episodes of 7
