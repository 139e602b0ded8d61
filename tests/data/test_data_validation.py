"""The bad-file corpus: every broken input gives one DataError naming the file, the problem, the fix.

Files are generated in tmp_path by the writers in data_factories.py; nothing binary is committed.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest
from data_factories import make_arrays, write_d4rl, write_dqn_replay, write_dt_pickle, write_minari

from dema.cli import main as dema_main
from dema.data.load import load_dataset
from dema.data.validate import DataWarning
from dema.errors import ConfigError, DataError


def expect_error(path, *words, **kwargs) -> str:
    """load_dataset(path) must raise a one-line DataError naming the file, the words and a fix."""
    with pytest.raises(DataError) as info:
        load_dataset(path, **kwargs)
    message = str(info.value)
    assert str(path).split("/")[-1] in message, message
    assert "Fix:" in message and "\n" not in message, message
    for word in words:
        assert word in message, message
    return message


# ------------------------------------------------------------------ D4RL hdf5


@pytest.mark.parametrize("key", ["observations", "actions", "rewards", "terminals"])
def test_missing_key(tmp_path, key):
    arrays = make_arrays()
    del arrays[key]
    expect_error(write_d4rl(tmp_path / "x.hdf5", arrays), "missing key", key)


def test_mismatched_lengths(tmp_path):
    arrays = make_arrays()
    arrays["actions"] = arrays["actions"][:-3]
    expect_error(write_d4rl(tmp_path / "x.hdf5", arrays), "different lengths", "actions 13", "observations 16")


@pytest.mark.parametrize("key,value", [("observations", np.nan), ("rewards", np.inf), ("actions", -np.inf)])
def test_nan_and_inf(tmp_path, key, value):
    arrays = make_arrays()
    arrays[key][9] = value
    expect_error(write_d4rl(tmp_path / "x.hdf5", arrays), key, "NaN or inf", "index 9")


def test_empty_dataset(tmp_path):
    arrays = {k: v[:0] for k, v in make_arrays().items()}
    expect_error(write_d4rl(tmp_path / "x.hdf5", arrays), "empty")


def _corrupt_everywhere(data: bytes, path, every: int, width: int) -> None:
    """Overwrite `width` bytes with 0xff at every `every`-th offset of a clean file: each copy loads
    or fails with a one-line DataError naming the file and the fix, and at least one fails."""
    errors = 0
    for offset in range(0, len(data), every):
        path.write_bytes(data[:offset] + b"\xff" * width + data[offset + width :])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DataWarning)
                load_dataset(path)
        except DataError as exc:
            assert path.name in str(exc) and "Fix:" in str(exc)
            errors += 1
    assert errors > 0


def test_truncated_hdf5(tmp_path):
    path = write_d4rl(tmp_path / "x.hdf5", make_arrays(lengths=(300, 300)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, "truncated or corrupt")


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_corruption_anywhere_gives_a_data_error_or_a_valid_load(tmp_path, compression):
    """Overwrite 256 bytes at every 512-byte offset: only DataError (or, by luck, a clean load)."""
    clean = tmp_path / "clean.hdf5"
    with h5py.File(clean, "w") as file:
        for key, value in make_arrays(lengths=(100, 100)).items():
            file.create_dataset(key, data=value, compression=compression)
    _corrupt_everywhere(clean.read_bytes(), tmp_path / "x.hdf5", every=512, width=256)


def test_not_hdf5_at_all(tmp_path):
    path = tmp_path / "x.hdf5"
    path.write_bytes(b"this is not an hdf5 file" * 10)
    expect_error(path, "truncated or corrupt")


def test_unknown_format(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    expect_error(path, "unknown dataset format")


def test_observation_size_does_not_match_environment(tmp_path):
    path = write_d4rl(tmp_path / "x.hdf5", make_arrays(obs_dim=17, act_dim=6))
    expect_error(path, "17 features", "Hopper-v5 has 11", env="hopper")
    # the env named in the file's metadata is checked too
    path = write_d4rl(tmp_path / "y.hdf5", make_arrays(obs_dim=17, act_dim=6), attrs={"env_id": "Hopper-v5"})
    expect_error(path, "17 features")
    # and the env of a dataset id
    write_d4rl(tmp_path / "hopper-medium-v2.hdf5", make_arrays(obs_dim=17, act_dim=6))
    os.environ["DEMA_DATA_PATH"] = str(tmp_path)
    try:
        with pytest.raises(DataError, match="17 features"):
            load_dataset("hopper-medium-v2")
    finally:
        del os.environ["DEMA_DATA_PATH"]


def test_action_size_does_not_match_environment(tmp_path):
    expect_error(write_d4rl(tmp_path / "x.hdf5", make_arrays(act_dim=6)), "actions have 6", env="hopper")


def test_episode_longer_than_time_limit_means_missing_flags(tmp_path):
    arrays = make_arrays(lengths=(1500,))
    arrays["terminals"][:] = False
    arrays["terminals"][-1] = True
    expect_error(write_d4rl(tmp_path / "x.hdf5", arrays), "1500 steps", "limit of 1000", env="hopper")


def test_unfinished_last_episode_is_marked_timeout_with_warning(tmp_path):
    path = write_d4rl(tmp_path / "x.hdf5", make_arrays(last_terminal=False))
    with pytest.warns(DataWarning, match="marked as a timeout"):
        ds = load_dataset(path)
    assert ds.timeouts[-1] and not ds.terminals[-1]
    assert len(ds.episode_bounds()) == 3


def test_unfinished_last_episode_strict_is_an_error(tmp_path):
    path = write_d4rl(tmp_path / "x.hdf5", make_arrays(last_terminal=False))
    expect_error(path, "no terminal or timeout", strict=True)


def test_no_episode_ends_anywhere_warns(tmp_path):
    arrays = make_arrays()
    arrays["terminals"][:] = False
    arrays["timeouts"][:] = False
    with pytest.warns(DataWarning, match="one episode"):
        ds = load_dataset(write_d4rl(tmp_path / "x.hdf5", arrays))
    assert len(ds.episode_bounds()) == 1


def test_maze2d_timeout_quirk_warns(tmp_path):
    path = write_d4rl(tmp_path / "maze2d-umaze-v1.hdf5", make_arrays(obs_dim=4, act_dim=2))
    with pytest.warns(DataWarning, match="maze2d timeouts mark goal resets"):
        load_dataset(path)


def test_maze2d_quirk_not_warned_for_gymnasium_pointmaze(tmp_path):
    path = write_d4rl(tmp_path / "maze2d-umaze-dema.hdf5", make_arrays(obs_dim=4, act_dim=2), attrs={"env_id": "PointMaze_UMaze-v3"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        load_dataset(path)


def test_unknown_environment_name_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown environment 'antmaze'"):
        load_dataset(write_d4rl(tmp_path / "x.hdf5", make_arrays()), env="antmaze")


def test_terminal_and_timeout_on_one_step_warns_and_keeps_terminal(tmp_path):
    arrays = make_arrays()
    arrays["timeouts"][4] = True  # step 4 is already terminal
    with pytest.warns(DataWarning, match="both terminal and timeout"):
        ds = load_dataset(write_d4rl(tmp_path / "x.hdf5", arrays))
    assert ds.terminals[4] and not ds.timeouts[4]


def test_old_d4rl_without_timeouts_uses_timelimit_info(tmp_path):
    arrays = make_arrays()
    truncated = arrays.pop("timeouts")
    path = write_d4rl(tmp_path / "x.hdf5", arrays)
    with h5py.File(path, "a") as file:
        file.create_dataset("infos/TimeLimit.truncated", data=truncated)
    with pytest.warns(DataWarning, match="TimeLimit.truncated"):
        ds = load_dataset(path)
    np.testing.assert_array_equal(ds.timeouts, truncated)


# ------------------------------------------------------------------ DT pickles


class _RunsCode:
    """Pickles to `os.system("touch <marker>")`: what a malicious dataset would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    episode = {k: v for k, v in make_arrays(lengths=(5,)).items()}
    episode["extra"] = _RunsCode(marker)
    path.write_bytes(pickle.dumps([episode]))
    message = expect_error(path, "could run code", "refused")
    assert "system" in message  # names the global it refused (posix.system)
    assert not marker.exists()


def test_pickle_truncated(tmp_path):
    path = write_dt_pickle(tmp_path / "x.pkl", make_arrays(lengths=(200, 200)))
    path.write_bytes(path.read_bytes()[:1000])
    expect_error(path, "truncated or corrupt")


def test_pickle_corruption_anywhere_gives_a_data_error_or_a_valid_load(tmp_path):
    data = write_dt_pickle(tmp_path / "clean.pkl", make_arrays(lengths=(20, 20, 20))).read_bytes()
    _corrupt_everywhere(data, tmp_path / "x.pkl", every=13, width=3)


def test_pickle_ragged_or_non_numeric_field(tmp_path):
    episode = make_arrays(lengths=(4,))
    episode["observations"] = [[1.0, 2.0], [3.0]]  # ragged
    path = tmp_path / "ragged.pkl"
    path.write_bytes(pickle.dumps([episode]))
    expect_error(path, "episode 0", "`observations` is not a numeric array")
    episode["observations"] = ["a", "b", "c", "d"]
    path.write_bytes(pickle.dumps([episode]))
    expect_error(path, "episode 0", "`observations` is not a numeric array")


def test_pickle_episode_with_mismatched_lengths(tmp_path):
    episodes = [make_arrays(lengths=(4,)), make_arrays(lengths=(4,))]
    episodes[1]["actions"] = episodes[1]["actions"][:3]
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(episodes))
    expect_error(path, "episode 1 has arrays of different lengths", "actions 3")


def test_pickle_not_a_list_of_episodes(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"observations": np.zeros((3, 2))}))
    expect_error(path, "not a list of episode dicts")


def test_pickle_empty_and_missing_keys(tmp_path):
    path = tmp_path / "empty.pkl"
    path.write_bytes(pickle.dumps([]))
    expect_error(path, "empty")
    path = tmp_path / "nokeys.pkl"
    episode = make_arrays(lengths=(4,))
    del episode["terminals"]
    path.write_bytes(pickle.dumps([episode]))
    expect_error(path, "missing key", "terminals", "episode 0")


# ------------------------------------------------------------------ Minari and DQN-replay


def test_minari_missing_key_and_short_observations(tmp_path):
    folder = write_minari(tmp_path, make_arrays())
    with h5py.File(folder / "data" / "main_data.hdf5", "a") as file:
        del file["episode_1"]["rewards"]
    expect_error(folder, "missing key", "rewards", "episode_1")

    folder = write_minari(tmp_path / "b", make_arrays())
    with h5py.File(folder / "data" / "main_data.hdf5", "a") as file:
        obs = file["episode_0"]["observations"][:-1]
        del file["episode_0"]["observations"]
        file["episode_0"].create_dataset("observations", data=obs)
    expect_error(folder, "Minari stores T+1")


def test_minari_episode_with_mismatched_lengths(tmp_path):
    folder = write_minari(tmp_path, make_arrays())
    with h5py.File(folder / "data" / "main_data.hdf5", "a") as file:
        actions = file["episode_2"]["actions"][:-1]
        del file["episode_2"]["actions"]
        file["episode_2"].create_dataset("actions", data=actions)
    expect_error(folder, "episode_2", "different lengths", "actions 3")


def test_minari_arrow_format_refused(tmp_path):
    folder = tmp_path / "ds-v0"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "metadata.json").write_text('{"data_format": "arrow"}')
    (folder / "data" / "main_data.hdf5").write_bytes(b"")
    with pytest.raises(DataError, match="arrow"):
        load_dataset(folder)


def test_dqn_replay_truncated_gzip(tmp_path):
    folder = tmp_path / "replay_logs"
    write_dqn_replay(folder, n_steps=300, capacity=400)
    path = folder / "$store$_observation_ckpt.0.gz"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match="truncated or corrupt") as info, warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        load_dataset(folder)
    assert "$store$_observation_ckpt.0.gz" in str(info.value)


def test_dqn_replay_missing_store(tmp_path):
    folder = tmp_path / "replay_logs"
    write_dqn_replay(folder, n_steps=30, capacity=40)
    (folder / "$store$_reward_ckpt.0.gz").unlink()
    with pytest.raises(DataError, match="reward_ckpt.0.gz: missing"):
        load_dataset(folder)


def test_dqn_replay_stores_of_different_sizes(tmp_path):
    folder = tmp_path / "replay_logs"
    write_dqn_replay(folder, n_steps=30, capacity=40)
    write_dqn_replay(tmp_path / "other", n_steps=30, capacity=20)
    (tmp_path / "other" / "$store$_reward_ckpt.0.gz").replace(folder / "$store$_reward_ckpt.0.gz")
    with pytest.raises(DataError, match="stores of different sizes .action 40, reward 20"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        load_dataset(folder)


def test_folder_of_something_else(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    expect_error(tmp_path, "neither a Minari dataset", "notes.txt")


# ------------------------------------------------------------------ the command line


def test_dema_data_bad_file_one_line_no_traceback(tmp_path, capsys):
    arrays = make_arrays()
    arrays["rewards"][2] = np.nan
    path = write_d4rl(tmp_path / "bad.hdf5", arrays)
    assert dema_main(["data", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.hdf5" in err and "NaN" in err and "Traceback" not in err


def test_dema_data_subprocess_exit_code(tmp_path):
    path = tmp_path / "bad.hdf5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # HDF5 signature, nothing behind it
    result = subprocess.run([sys.executable, "-m", "dema.cli", "data", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "truncated or corrupt" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

