"""Bad Minari inputs (issue 26): a malformed id, an id neither local nor downloadable, a dataset whose
environment cannot be made, whose spaces or version differ from the environment's. Each is one line
naming the problem and the fix, exit 2, and nothing written (no run directory, no Minari root)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from corpus import TINY, dema

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from data_factories import minari_root, write_with_minari  # noqa: E402,F401

minari = pytest.importorskip("minari", reason="minari not installed (pip install -e '.[minari]')")


@pytest.fixture
def root(minari_root) -> Path:
    """An empty Minari root, and a working folder apart from it (data_factories.minari_root)."""
    return minari_root


def _refused(capsys, *argv) -> str:
    code, out, err = dema(capsys, *argv)
    assert code == 2, (out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "Fix:" in err or "fix" in err.lower(), err
    return err


def _train(dataset: str) -> list:
    return ["train", "--model", "dt", "--dataset", dataset, "--runs-dir", "runs", *TINY]


@pytest.mark.parametrize("text", ["mujoco/hopper/medium", "mujoco//medium-v0", "mujoco/hopper/medium-vx"])
def test_a_malformed_id_is_one_line(root, capsys, text):
    for argv in (["data", text], _train(text)):
        err = _refused(capsys, *argv)
        assert text in err and "namespace/name-vN" in err
    assert not Path("runs").exists() and not root.exists()


def test_an_id_that_cannot_be_downloaded_is_one_line_naming_the_command(root, capsys, monkeypatch):
    def download(dataset_id, force_download=False):  # a download that dies half-way: the network went
        (root / dataset_id / "data").mkdir(parents=True)
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(minari, "download_dataset", download)
    for argv in (["data", "mujoco/hopper/medium-v0"], _train("mujoco/hopper/medium-v0")):
        err = _refused(capsys, *argv)
        assert "mujoco/hopper/medium-v0" in err and "`minari download mujoco/hopper/medium-v0`" in err
        assert "ConnectionError" in err
    assert not Path("runs").exists() and not root.exists()  # the half download is gone


def test_offline_minari_is_one_line_too(root, capsys, monkeypatch):
    """minari's real downloader, with the network off (huggingface_hub's offline mode: no retries)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    err = _refused(capsys, "data", "mujoco/hopper/medium-v0")
    assert "could not be downloaded" in err and "minari download mujoco/hopper/medium-v0" in err
    assert not root.exists()


def test_without_minari_the_line_says_how_to_install_it(root, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "minari", None)  # import minari -> ImportError
    err = _refused(capsys, "data", "mujoco/hopper/medium-v0")
    assert '.[minari]' in err and "minari download mujoco/hopper/medium-v0" in err


def test_a_dataset_whose_environment_cannot_be_made(root, capsys):
    import gymnasium as gym

    # a package registered this environment where the dataset was made; it is not installed here
    gym.register("DemaGoneHopper-v0", entry_point="gymnasium.envs.mujoco.hopper_v5:HopperEnv", max_episode_steps=1000)
    try:
        write_with_minari("test/gone/random-v0", env="DemaGoneHopper-v0")
    finally:
        del gym.registry["DemaGoneHopper-v0"]
    err = _refused(capsys, *_train("test/gone/random-v0"))
    assert "DemaGoneHopper-v0" in err and "cannot be made" in err
    assert not Path("runs").exists()


def test_a_dataset_whose_observation_space_differs_from_the_environments(root, capsys):
    write_with_minari("test/hopper/wide-v0", obs_dim=12)
    for argv in (["data", "test/hopper/wide-v0"], _train("test/hopper/wide-v0")):
        err = _refused(capsys, *argv)
        assert "12" in err and "11" in err and "Hopper-v5" in err
    assert not Path("runs").exists()


def test_a_v4_dataset_is_not_scored_in_v5(root, capsys):
    write_with_minari("test/hopper/old-v0", env="Hopper-v4")
    err = _refused(capsys, *_train("test/hopper/old-v0"))
    assert "Hopper-v4" in err and "Hopper-v5" in err
    assert not Path("runs").exists()
    # reading it is no error, but `dema data` warns that training refuses it
    code, _, err = dema(capsys, "data", "test/hopper/old-v0")
    assert code == 0 and "recorded in Hopper-v4" in err and "`dema train` refuses this dataset" in err


def test_a_dataset_of_another_time_limit_is_not_scored_in_the_tables(root, capsys):
    import gymnasium as gym

    write_with_minari("test/hopper/short-v0", env=gym.make("Hopper-v5", max_episode_steps=500).spec)
    err = _refused(capsys, *_train("test/hopper/short-v0"))
    assert "500" in err and "1000" in err
    assert not Path("runs").exists()
