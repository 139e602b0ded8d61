"""Writers for small synthetic datasets in every format, good and broken, generated in tmp_path.

The bad-file corpus of tests/data/test_data_validation.py is built from these, so no binary test
files are committed; `make_arrays` + `write_d4rl` also write the training tests' tiny dataset
(tests/train/train_helpers.py puts this folder on sys.path). (A plain module, not conftest.py:
several test folders have a conftest, and `from conftest import ...` would pick whichever was
imported last.)
"""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest


def make_arrays(lengths=(5, 7, 4), obs_dim=11, act_dim=3, last_terminal=True, seed=0, ends=None) -> dict:
    """Flat D4RL arrays for episodes of the given lengths.

    Episode ends: `ends`, one of "terminal", "timeout" or None (unfinished) per episode, when given;
    else they alternate terminal/timeout and the last is a terminal if `last_terminal`, unfinished if not.
    """
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    if ends is None:
        last = "terminal" if last_terminal else None
        ends = [("terminal", "timeout")[i % 2] for i in range(len(lengths) - 1)] + [last]
    assert len(ends) == len(lengths), "one end per episode"
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    for end, kind in zip(np.cumsum(lengths) - 1, ends):
        if kind is not None:
            {"terminal": terminals, "timeout": timeouts}[kind][end] = True
    return {
        "observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "next_observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        "rewards": rng.normal(1.0, 1.0, size=n).astype(np.float32),
        "terminals": terminals,
        "timeouts": timeouts,
    }


def write_d4rl(path: Path, arrays: dict, attrs: dict | None = None, meta_datasets: dict | None = None) -> Path:
    """A D4RL hdf5 file (the arrays as datasets, a `metadata` group); the one tiny-D4RL writer of the tests."""
    with h5py.File(path, "w") as file:
        for key, value in arrays.items():
            file.create_dataset(key, data=value)
        group = file.create_group("metadata")
        for key, value in (attrs or {}).items():
            group.attrs[key] = value
        for key, value in (meta_datasets or {}).items():
            group.create_dataset(key, data=value)
    return path


def split_episodes(arrays: dict) -> list[dict]:
    ends = np.flatnonzero(arrays["terminals"] | arrays["timeouts"]) + 1
    starts = np.concatenate([[0], ends[:-1]])
    return [{k: v[s:e] for k, v in arrays.items()} for s, e in zip(starts, ends)]


def write_dt_pickle(path: Path, arrays: dict, done_key: str = "terminals") -> Path:
    episodes = []
    for ep in split_episodes(arrays):
        episodes.append({
            "observations": ep["observations"],
            "next_observations": ep["next_observations"],
            "actions": ep["actions"],
            "rewards": ep["rewards"],
            done_key: ep["terminals"],
        })
    path.write_bytes(pickle.dumps(episodes))
    return path


def write_minari(root: Path, arrays: dict, dataset_id="test/hopper-v0", dict_obs=False, metadata_in_data=True, env_id="Hopper-v5") -> Path:
    """A Minari hdf5 dataset under root/<dataset_id>/data; returns the dataset folder."""
    folder = root / dataset_id
    data = folder / "data"
    data.mkdir(parents=True)
    with h5py.File(data / "main_data.hdf5", "w") as file:
        for i, ep in enumerate(split_episodes(arrays)):
            group = file.create_group(f"episode_{i}")
            group.attrs["id"] = i
            obs = np.concatenate([ep["observations"], ep["next_observations"][-1:]])  # T + 1 rows
            if dict_obs:
                sub = group.create_group("observations")
                sub.create_dataset("observation", data=obs[:, 2:])
                sub.create_dataset("achieved_goal", data=obs[:, :2])
            else:
                group.create_dataset("observations", data=obs)
            group.create_dataset("actions", data=ep["actions"])
            group.create_dataset("rewards", data=ep["rewards"])
            group.create_dataset("terminations", data=ep["terminals"])
            group.create_dataset("truncations", data=ep["timeouts"])
    meta = {
        "dataset_id": dataset_id,
        "total_episodes": len(split_episodes(arrays)),
        "total_steps": len(arrays["rewards"]),
        "data_format": "hdf5",
        "env_spec": json.dumps({"id": env_id, "max_episode_steps": 1000}),
    }
    (data if metadata_in_data else folder).joinpath("metadata.json").write_text(json.dumps(meta))
    return folder


def _save_gz(path: Path, value) -> None:
    with gzip.open(path, "wb") as handle:
        np.save(handle, np.asarray(value), allow_pickle=False)


def write_dqn_replay(folder: Path, n_steps: int, capacity: int, ckpt: int = 0, seed: int = 0, episode_len: int = 7, n_actions: int = 4) -> dict:
    """A dopamine circular buffer after `n_steps` adds (wraps when n_steps > capacity).

    Returns the time-ordered stream of everything added, to check the loader's ordering against.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    frames = rng.integers(0, 256, size=(n_steps, 6, 5), dtype=np.uint8)  # small frames keep tests fast
    actions = rng.integers(0, n_actions, size=n_steps).astype(np.int32)
    rewards = rng.integers(-1, 2, size=n_steps).astype(np.float32)
    terminal = ((np.arange(n_steps) + 1) % episode_len == 0).astype(np.uint8)
    store = {
        "observation": np.zeros((capacity, 6, 5), np.uint8),
        "action": np.zeros(capacity, np.int32),
        "reward": np.zeros(capacity, np.float32),
        "terminal": np.zeros(capacity, np.uint8),
    }
    for t in range(n_steps):
        for key, value in zip(store, (frames, actions, rewards, terminal)):
            store[key][t % capacity] = value[t]
    for key, value in store.items():
        _save_gz(folder / f"$store$_{key}_ckpt.{ckpt}.gz", value)
    _save_gz(folder / f"add_count_ckpt.{ckpt}.gz", np.int64(n_steps))
    # dopamine: invalid_range(cursor, capacity, stack_size=4, update_horizon=1)
    cursor = n_steps % capacity
    _save_gz(folder / f"invalid_range_ckpt.{ckpt}.gz", np.array([(cursor - 1 + i) % capacity for i in range(5)], dtype=np.float64))  # float, as dopamine
    return {"observation": frames, "action": actions, "reward": rewards, "terminal": terminal, "cursor": cursor}



def write_with_minari(dataset_id: str, env="Hopper-v5", episodes: int = 3, steps: int = 20, data_format="hdf5",
                      ref_scores=(-20.0, 3000.0), obs_dim: int | None = None, seed: int = 0):
    """A Minari dataset written by minari's own API (`create_dataset_from_buffers`) under the Minari root
    of the moment ($MINARI_DATASETS_PATH): `episodes` random-action episodes of at most `steps` steps in
    `env` (an id or a gymnasium EnvSpec), with reference scores when given; `obs_dim` records other
    observations than the environment's (a Box of that size). Returns minari's MinariDataset."""
    import warnings

    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    made = gym.make(env)
    made.action_space.seed(seed)
    buffers = []
    for i in range(episodes):
        obs, _ = made.reset(seed=seed + i)
        ep = {"observations": [obs], "actions": [], "rewards": [], "terminations": [], "truncations": []}
        for t in range(steps):
            action = made.action_space.sample()
            obs, reward, term, trunc, _ = made.step(action)
            trunc = trunc or t == steps - 1  # the episode is cut here: a timeout
            for key, value in zip(("observations", "actions", "rewards", "terminations", "truncations"),
                                  (obs, action, reward, term, trunc)):
                ep[key].append(value)
            if term or trunc:
                break
        arrays = {k: np.array(v) for k, v in ep.items()}
        if obs_dim is not None:
            rng = np.random.default_rng(i)
            arrays["observations"] = rng.normal(size=(len(arrays["observations"]), obs_dim))
        buffers.append(EpisodeBuffer(**arrays))
    extra = {} if obs_dim is None else {"observation_space": gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64)}
    refs = {} if ref_scores is None else {"ref_min_score": ref_scores[0], "ref_max_score": ref_scores[1]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # minari's notes on optional fields (eval_env) left out on purpose
        return minari.create_dataset_from_buffers(
            dataset_id, buffers, env=made.spec, algorithm_name="random", author="dema tests",
            author_email="tests@dema", code_permalink="tests/data/data_factories.py", description="random actions",
            data_format=data_format, **refs, **extra)


@pytest.fixture
def minari_root(tmp_path, monkeypatch) -> Path:
    """An empty Minari root (MINARI_DATASETS_PATH), and a working folder apart from it (the cwd)."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path / "minari"
