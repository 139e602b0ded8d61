"""One parser of dataset ids: every id form means the same thing through every entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dema.data.load import load_dataset
from dema.envs import ENVS, PRESETS, dataset_name, env_spec, parse_dataset
from dema.errors import ConfigError, DataError
from dema.models import model_config
from dema.run.config import find_preset, preset_config

from data_factories import make_arrays, write_d4rl

# id form -> (environment, preset) it must mean everywhere
ID_FORMS = {
    "hopper-medium": ("hopper", "hopper-medium"),
    "hopper-medium-v2": ("hopper", "hopper-medium"),
    "datasets/hopper-medium-v5.hdf5": ("hopper", "hopper-medium"),
    "/abs/path/walker2d-medium-expert-v5.hdf5": ("walker2d", "walker2d-medium-expert"),
    "hopper-medium-replay-small": ("hopper", "hopper-medium-replay"),  # the bundled dataset
    "halfcheetah-medium-replay-v2": ("halfcheetah", "halfcheetah-medium-replay"),
    "maze2d-umaze-v1": ("maze2d-umaze", "maze2d-umaze"),
    "maze2d-medium-v3.hdf5": ("maze2d-medium", "maze2d-medium"),
    "maze2d-large": ("maze2d-large", "maze2d-large"),
}


@pytest.mark.parametrize("text", ID_FORMS)
def test_every_entry_point_agrees_on_an_id(text):
    env, preset = ID_FORMS[text]
    ref = parse_dataset(text)
    assert (ref.env.name, ref.preset.name) == (env, preset)
    assert env_spec(text).name == env  # evaluation, validation, collection
    assert find_preset(text) == preset  # dema train
    for model in ("dema", "dt"):
        assert model_config(model, text) == model_config(model, preset)  # dema params, attention, bench
    config = preset_config("dema", text)
    assert config.preset == preset
    assert config.optim.lr == PRESETS[preset].lr
    assert config.data.reward_scale == ENVS[env].reward_scale


def test_the_paper_sizes_come_from_the_table():
    assert model_config("dema", "hopper-medium").embed_dim == 256
    assert model_config("dema", "walker2d-medium").embed_dim == 128
    assert model_config("dema", "hopper-medium-expert").d_model == 128
    assert model_config("dema", "maze2d-medium").context_len == 8
    assert model_config("dema", "maze2d-medium").embed_dim == 256
    assert model_config("dt", "maze2d-medium").context_len == 8
    assert model_config("dema", "maze2d-umaze") == model_config("dema", "walker2d-medium")  # "MuJoCo settings"
    assert model_config("dema", "qbert").context_len == 8 and model_config("dema", "pong").context_len == 30
    lrs = {name: p.lr for name, p in PRESETS.items() if p.env in ("hopper", "halfcheetah", "walker2d")}
    assert sorted(n for n, lr in lrs.items() if lr == 1e-4) == ["hopper-medium", "hopper-medium-replay",
                                                                  "walker2d-medium"]


def test_gymnasium_ids_name_their_environment():
    assert env_spec("Hopper-v5").name == "hopper"
    assert env_spec("dema/maze2d-umaze-v3").name == "maze2d-umaze"
    with pytest.raises(ConfigError):  # Gymnasium's PointMaze has other observations than our flat maze2d
        env_spec("PointMaze_UMaze-v3")
    assert parse_dataset("Hopper-v5").preset is None


@pytest.mark.parametrize("text", ["foo", "hoper-medium", "maze2d", "antmaze-umaze-v2"])
def test_an_unknown_id_is_one_error_listing_the_known(text):
    with pytest.raises(ConfigError, match="hopper-medium.*walker2d-medium-expert"):
        find_preset(text)
    with pytest.raises(ConfigError, match=f"{text!r}.*hopper"):
        env_spec(text)


def test_a_maze_id_gets_the_size_checks(tmp_path, monkeypatch):
    """Once `maze2d-umaze-v1` became `maze2d`, an unknown env, and the size checks were skipped."""
    monkeypatch.setenv("DEMA_DATA_PATH", str(tmp_path))
    write_d4rl(tmp_path / "maze2d-umaze-v1.hdf5", make_arrays(obs_dim=11, act_dim=3))  # hopper-sized
    with pytest.raises(DataError, match="6"):
        load_dataset("maze2d-umaze-v1")
    write_d4rl(tmp_path / "maze2d-medium-v1.hdf5", make_arrays(obs_dim=6, act_dim=2))
    assert load_dataset("maze2d-medium-v1").obs_dim == 6


@pytest.mark.parametrize("argv", [
    ["train", "--model", "dema", "--dataset", "foo-medium"],
    ["train", "--model", "dema", "--dataset", "hopper-medium", "--preset", "foo"],
    ["attention", "--model", "dema", "--dataset", "foo-medium"],
    ["collect", "foo", "medium", "--steps", "10"],
])
def test_every_command_refuses_an_unknown_id_with_one_line(argv, tmp_path):
    out = subprocess.run([sys.executable, "-m", "dema.cli", *argv], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert "foo" in out.stderr and "hopper" in out.stderr


def test_dataset_name_strips_folders_and_suffixes():
    assert dataset_name("a/b/hopper-medium-v5.hdf5") == "hopper-medium-v5"
    assert dataset_name("hopper-medium") == "hopper-medium"
