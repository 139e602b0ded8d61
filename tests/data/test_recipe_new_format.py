"""CONTRIBUTING.md's recipe "Adding a dataset format", followed once: a throwaway format (numpy's
.npz holding the D4RL arrays) added to a copy of the package by the recipe's steps (a reader in
data/formats/, its recognition in `_read_any` by the file's bytes, its suffix for dataset ids) is
read, validated and summarised by `dema data`, found by id, and a truncated file is one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the recipes' helpers
from data_factories import make_arrays  # noqa: E402
from recipe_helpers import copy_package, insert_at, run_copy  # noqa: E402

READER = '''"""numpy's .npz with D4RL's flat arrays (a test's throwaway format)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from dema.data.dataset import OfflineDataset
from dema.data.validate import fail, require_keys

KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")


def load_npz(path: str | Path) -> OfflineDataset:
    src = str(path)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            require_keys(src, arrays.files, KEYS)
            columns = {key: arrays[key] for key in KEYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # a truncated or damaged zip
        raise fail(src, f"cannot be read as .npz ({type(exc).__name__})", "write the file again") from None
    return OfflineDataset(**columns, format="npz", source=src)
'''
RECOGNISE = '''    if head[:4] == b"PK\\x03\\x04":  # a zip archive: numpy's .npz
        from dema.data.formats.npz import load_npz

        return load_npz(path)
'''

CHECKS = """
import contextlib, io, os, sys
from dema.cli import main
from dema.data.load import load_dataset

folder = sys.argv[1]
data = load_dataset(f"{folder}/hopper-medium-npz.npz", env="hopper")
assert data.format == "npz" and len(data) == 36 and data.obs_dim == 11, (data.format, len(data))
os.environ["DEMA_DATA_PATH"] = folder
assert len(load_dataset("hopper-medium-npz")) == 36  # by id, through the search path
assert main(["data", f"{folder}/hopper-medium-npz.npz", "--json"]) == 0
err = io.StringIO()
with contextlib.redirect_stderr(err):
    assert main(["data", f"{folder}/truncated.npz"]) == 2
assert "truncated.npz" in err.getvalue() and len(err.getvalue().splitlines()) == 1, err.getvalue()
"""


def test_a_dataset_format_takes_a_reader_and_its_recognition(tmp_path):
    package = copy_package(tmp_path)
    # 1. the reader
    (package / "data" / "formats" / "npz.py").write_text(READER)
    # 2. recognised by its bytes in _read_any, before the unknown-format error
    insert_at(package / "data" / "load.py", 'raise fail(str(path), "unknown dataset format', RECOGNISE)
    # 3. its suffix, so that an id finds it in the search path
    envs = package / "envs.py"
    suffixes = 'DATASET_SUFFIXES = (".hdf5", ".h5", ".pkl", ".pickle")'
    assert envs.read_text().count(suffixes) == 1, "the recipe's anchor moved; update CONTRIBUTING.md"
    envs.write_text(envs.read_text().replace(suffixes, suffixes[:-1] + ', ".npz")'))

    folder = tmp_path / "datasets"
    folder.mkdir()
    np.savez(folder / "hopper-medium-npz.npz", **make_arrays((12, 9, 15), obs_dim=11, act_dim=3, ends=["terminal"] * 3))
    (folder / "truncated.npz").write_bytes((folder / "hopper-medium-npz.npz").read_bytes()[:300])

    proc = run_copy(package, "-c", CHECKS, str(folder))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert summary["episodes"] == 3
