"""Minari datasets by id: where Minari keeps them, and fetching one that is not there yet.

Minari keeps its datasets under one root, `$MINARI_DATASETS_PATH` (default `~/.minari/datasets`),
one folder per id: `<root>/mujoco/hopper/medium-v0/data/` (metadata.json and the episodes, hdf5 or
arrow storage). `local_dataset(id)` finds one there; `fetch(id)` downloads it with minari's own
downloader (`minari.download_dataset`, which shows its progress) when the `minari` package is
installed (`pip install -e ".[minari]"`). A download that fails leaves nothing behind: what it had
created under the root is removed, so a retry starts clean and the root holds no half dataset.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dema.data.validate import fail
from dema.envs import MINARI_ID_FORM, is_minari_id


def minari_root() -> Path:
    """Minari's local root, as minari itself computes it (minari.storage.get_dataset_path), without
    creating it: only a download or a written dataset makes it."""
    root = os.environ.get("MINARI_DATASETS_PATH")
    return Path(root).expanduser() if root else Path("~/.minari/datasets").expanduser()


def local_dataset(dataset_id: str) -> Path | None:
    """The dataset folder of `dataset_id` under Minari's root, when it holds data (`data/metadata.json`)."""
    folder = minari_root() / dataset_id
    return folder if (folder / "data" / "metadata.json").is_file() else None


def fetch(dataset_id: str, searched: str = "") -> Path:
    """Download `dataset_id` into Minari's root with minari's downloader; its folder, or a DataError
    naming the id and the command that fetches it. `searched` lists where dema already looked."""
    root = minari_root()
    where = f"not in Minari's local root {root}" + (f" nor in {searched}" if searched else "")
    command = f"`minari download {dataset_id}`"
    try:
        import minari
    except ImportError:
        raise fail(dataset_id, f"{where}, and the minari package that downloads it is not installed",
                   f'pip install -e ".[minari]" and run again, or fetch it with {command} (MINARI_DATASETS_PATH '
                   "chooses the root)") from None
    created = _created_by(dataset_id, root)
    try:
        minari.download_dataset(dataset_id)
    except BaseException as exc:  # no network, an id the server does not hold, Ctrl-C: leave nothing behind
        for path in created:
            shutil.rmtree(path, ignore_errors=True)
        if not isinstance(exc, Exception):
            raise
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise fail(dataset_id, f"{where}, and it could not be downloaded ({type(exc).__name__}: {reason})",
                   f"check the id (`minari list remote`), or fetch it with {command} on a machine with the network "
                   f"and copy it into {root}") from None
    found = local_dataset(dataset_id)
    if found is None:
        raise fail(dataset_id, f"minari's download finished but left no dataset in {root / dataset_id}",
                   f"fetch it again with {command} --force-download")
    return found


def _created_by(dataset_id: str, root: Path) -> list[Path]:
    """What a download of `dataset_id` would create that does not exist now: the first missing folder
    on the way from the root (itself included) to the dataset's folder; everything else the download
    writes (namespace metadata, the data) lies inside it."""
    folder = root
    for level in ["", *dataset_id.split("/")]:
        folder = folder / level if level else folder
        if not folder.exists():
            return [folder]
    return []


def check_id(text: str) -> None:
    """A text with a slash that is neither an existing path nor a Minari id (a missing version, an empty
    level): one line saying what a Minari id looks like."""
    if not is_minari_id(text):
        raise fail(text, f"no such file or folder, and not a Minari dataset id ({MINARI_ID_FORM})",
                   "give an existing path, or a Minari id with its version")
