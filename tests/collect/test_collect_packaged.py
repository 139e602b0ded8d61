"""The behaviour policies ship inside the package: every recipe finds them on a fresh install."""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

import dema
from dema.data.collect.policies import describe_source
from dema.data.collect.recipes import (
    LEVELS,
    PACKAGED_POLICY_DIR,
    POLICY_ENV_NAMES,
    REPLAY_LADDERS,
    default_policy_dir,
    resolve_policy,
)
from dema.envs import env_spec
from dema.errors import DataError

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _recipe_policy_files() -> set[str]:
    """Every `{algo}-{Env}.npz` that some recipe acts with (random actions need no file)."""
    names = set()
    for env, levels in LEVELS.items():
        for choice in [*levels.values(), *REPLAY_LADDERS[env]]:
            if choice.algo != "random":
                names.add(f"{choice.algo}-{POLICY_ENV_NAMES[env]}.npz")
    return names


def test_every_recipe_policy_ships_with_its_license():
    shipped = {p.name for p in PACKAGED_POLICY_DIR.iterdir()}
    assert {"LICENSE", "README.md"} <= shipped
    assert _recipe_policy_files() <= shipped
    license_text = (PACKAGED_POLICY_DIR / "LICENSE").read_text()
    assert "MIT License" in license_text and "Antonin RAFFIN" in license_text
    assert "DLR-RM/rl-trained-agents" in (PACKAGED_POLICY_DIR / "README.md").read_text()


def test_package_data_names_every_shipped_file():
    """A non-editable install (a wheel) carries only what [tool.setuptools.package-data] names."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+; the check reads pyproject.toml")
    patterns = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-data"]["dema"]
    package_root = Path(dema.__file__).resolve().parent
    for path in PACKAGED_POLICY_DIR.iterdir():
        relative = path.relative_to(package_root).as_posix()
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), f"{relative} is not package data"


def test_default_folder_is_the_shipped_one_unless_the_user_chose(monkeypatch, tmp_path):
    monkeypatch.delenv("DEMA_POLICY_DIR", raising=False)
    assert default_policy_dir() == PACKAGED_POLICY_DIR
    monkeypatch.setenv("DEMA_POLICY_DIR", str(tmp_path))
    assert default_policy_dir() == tmp_path


def test_missing_policy_errors_name_the_fix(monkeypatch, tmp_path):
    hopper = env_spec("hopper")
    monkeypatch.setenv("DEMA_POLICY_DIR", str(tmp_path))  # a user's folder without the file
    with pytest.raises(DataError, match="sac-Hopper.npz") as user_folder:
        resolve_policy(hopper, "sac")
    assert "DEMA_POLICY_DIR" in str(user_folder.value) and "shipped with dema" in str(user_folder.value)
    # The shipped folder itself lacking a file means a broken install: the fix is to reinstall.
    monkeypatch.setattr("dema.data.collect.recipes.PACKAGED_POLICY_DIR", tmp_path.resolve())
    with pytest.raises(DataError, match="reinstall dema"):
        resolve_policy(hopper, "sac", tmp_path)


def _dema_command() -> list[str]:
    """The `dema` console script of the running interpreter's environment, as a user would run it."""
    script = Path(sys.executable).parent / "dema"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "dema.cli"]


def test_fresh_install_collects_medium_without_any_policy_folder(tmp_path):
    """`dema collect hopper medium` from an unrelated folder, with no policy setting in the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("DEMA_POLICY_DIR", "DEMA_SHARED")}
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [*_dema_command(), "collect", "hopper", "medium", "--steps", "2000", "--num-envs", "2",
         "--out", "hopper-medium.hdf5", "--no-progress"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "hopper-medium.hdf5"
    assert out.is_file() and "wrote" in result.stdout
    with h5py.File(out, "r") as f:
        assert f["observations"].shape == (2000, 11) and f["actions"].shape == (2000, 3)
        meta = dict(f["metadata"].attrs)
    assert meta["env_id"] == "Hopper-v5" and meta["recipe"] == "medium" and meta["steps"] == 2000
    (stage,) = json.loads(meta["stages"])
    assert stage["label"] == "sac-Hopper stochastic"
    # The policy acted with is the shipped file, byte for byte (its content hash is recorded).
    assert stage["source"] == describe_source(PACKAGED_POLICY_DIR / "sac-Hopper.npz")
