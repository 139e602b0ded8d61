"""Minari datasets by id (issue 26): found in Minari's root ($MINARI_DATASETS_PATH), downloaded through
minari's own downloader when missing, trained on and scored in the environment they record,
normalised with their own reference scores. Every dataset here is written by minari's own API."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from dema.data.load import load_dataset
from dema.envs import parse_dataset, preset
from dema.run.config import preset_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "robustness"))
from corpus import TINY, dema  # noqa: E402
from data_factories import minari_root, write_with_minari  # noqa: E402,F401

minari = pytest.importorskip("minari", reason="minari not installed (pip install -e '.[minari]')")


@pytest.fixture
def root(minari_root) -> Path:
    """An empty Minari root, and a working folder apart from it (data_factories.minari_root)."""
    return minari_root


@pytest.mark.parametrize("text, name, env, preset_name", [
    ("mujoco/hopper/medium-v0", "mujoco-hopper-medium-v0", "hopper", "hopper-medium"),
    ("dema/walker2d/medium-replay-v1", "dema-walker2d-medium-replay-v1", "walker2d", "walker2d-medium-replay"),
    ("mujoco/hopper/expert-v0", "mujoco-hopper-expert-v0", "hopper", "hopper-default"),
    ("mujoco/ant/medium-v0", "mujoco-ant-medium-v0", None, "ant-default"),
])
def test_a_minari_id_names_its_environment_and_preset(text, name, env, preset_name):
    ref = parse_dataset(text)
    assert ref.minari and ref.name == name and "/" not in ref.name  # run names hold no slash
    assert (ref.env.name if ref.env else None) == env
    assert preset(text).name == preset_name


def test_a_dataset_outside_the_presets_takes_its_environments_defaults():
    config = preset_config("dema", "mujoco/hopper/expert-v0")
    assert config.preset == "hopper-default"  # config.json says which
    assert (config.model.n_layer, config.model.embed_dim, config.model.d_model, config.model.context_len) == (3, 128, 64, 20)
    assert config.optim.lr == 1e-4 and config.data.reward_scale == 1000.0
    assert preset_config("dt", "mujoco/ant/simple-v0").optim.lr == 1e-4
    # every field stays overridable: --preset names one of the paper's instead
    assert preset_config("dema", "mujoco/hopper/expert-v0", preset="hopper-medium-expert").model.d_model == 128


@pytest.mark.parametrize("storage", ["hdf5", "arrow"])
def test_both_storages_read_by_id_give_the_episodes_minari_reads(root, storage):
    pytest.importorskip("pyarrow") if storage == "arrow" else None
    written = write_with_minari(f"test/hopper/random-{storage}-v0", data_format=storage, episodes=4)
    ours = load_dataset(f"test/hopper/random-{storage}-v0")
    assert ours.format == "minari" and ours.metadata["data_format"] == storage
    episodes = list(minari.load_dataset(f"test/hopper/random-{storage}-v0").iterate_episodes())
    assert len(episodes) == 4 and written.total_steps == len(ours)
    np.testing.assert_array_equal(ours.observations, np.concatenate([e.observations[:-1] for e in episodes]).astype(np.float32))
    np.testing.assert_array_equal(ours.next_observations, np.concatenate([e.observations[1:] for e in episodes]).astype(np.float32))
    np.testing.assert_array_equal(ours.actions, np.concatenate([e.actions for e in episodes]).astype(np.float32))
    np.testing.assert_array_equal(ours.terminals, np.concatenate([e.terminations for e in episodes]))
    np.testing.assert_array_equal(ours.timeouts, np.concatenate([e.truncations for e in episodes]))


def test_a_dataset_written_by_minari_trains_and_scores_by_its_id(root, capsys):
    write_with_minari("test/hopper/random-v0", episodes=4)
    code, out, err = dema(capsys, "train", "--model", "dt", "--dataset", "test/hopper/random-v0", "--runs-dir", "runs", *TINY)
    assert code == 0, err
    run = Path("runs/test-hopper-random-v0_dt_paper_s0")
    assert "preset hopper-default" in out and "the dataset's own reference scores" in out
    config = json.loads((run / "config.json").read_text())
    assert config["preset"] == "hopper-default" and config["data"]["dataset"] == "test/hopper/random-v0"
    report = json.loads((run / "eval.json").read_text())
    assert report["env"] == "Hopper-v5" and report["reference_scores"] == {"min": -20.0, "max": 3000.0, "source": "dataset"}
    returns = report["per_target"][0]["returns"]
    assert report["normalized_mean"] == pytest.approx(np.mean([100 * (r + 20) / 3020 for r in returns]))
    # `dema eval` scores it again the same way, from the run directory alone
    code, _, err = dema(capsys, "eval", run, "--episodes", "1", "--max-episode-steps", "10", "--json")
    assert code == 0, err
    assert json.loads((run / "eval.json").read_text())["reference_scores"]["source"] == "dataset"


def test_without_reference_scores_the_tables_are_used_and_said(root, capsys):
    write_with_minari("test/hopper/noref-v0", ref_scores=None)
    code, out, err = dema(capsys, "train", "--model", "dt", "--dataset", "test/hopper/noref-v0", "--runs-dir", "runs", *TINY)
    assert code == 0, err
    report = json.loads(Path("runs/test-hopper-noref-v0_dt_paper_s0/eval.json").read_text())
    assert report["reference_scores"] == {"min": -20.272305, "max": 3234.3, "source": "table"}


def test_an_environment_outside_the_table_is_made_from_the_recorded_spec(root, capsys):
    write_with_minari("test/swimmer/random-v0", env="Swimmer-v5", ref_scores=(5.0, 300.0))
    code, out, err = dema(capsys, "train", "--model", "dt", "--dataset", "test/swimmer/random-v0",
                          "--runs-dir", "runs", *TINY)
    assert code == 0, err
    run = Path("runs/test-swimmer-random-v0_dt_paper_s0")
    assert json.loads((run / "config.json").read_text())["preset"] == "swimmer-default"
    report = json.loads((run / "eval.json").read_text())
    assert report["env"] == "Swimmer-v5" and report["reference_scores"]["source"] == "dataset"
    assert report["targets"] == [300.0, 150.0]  # the expert reference and half of it
    assert json.loads((run / "normalization.json").read_text())["env_spec"]["obs_dim"] == 8


def test_a_missing_id_is_fetched_by_minaris_downloader(root, capsys, monkeypatch):
    calls = []

    def download(dataset_id, force_download=False):  # what minari's does, without the network
        calls.append(dataset_id)
        write_with_minari(dataset_id)

    monkeypatch.setattr(minari, "download_dataset", download)
    code, out, err = dema(capsys, "data", "mujoco/hopper/medium-v0", "--json")
    assert code == 0, err
    assert calls == ["mujoco/hopper/medium-v0"] and json.loads(out)["transitions"] == 60
    assert dema(capsys, "data", "mujoco/hopper/medium-v0")[0] == 0 and len(calls) == 1  # found locally now
