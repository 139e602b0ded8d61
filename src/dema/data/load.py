"""`load_dataset(path_or_id)`: a file, a folder or a dataset id -> a validated `OfflineDataset`;
`load_training_data`: what `dema train` reads (the same, but a DQN-replay game sampled as DT does).

Resolution, in order:
1. an existing path: a file (`.hdf5`/`.h5`: D4RL, or Minari's `main_data.hdf5`; `.pkl`: DT pickle;
   a `$store$_*_ckpt.N.gz`: that DQN-replay checkpoint) or a folder (a Minari dataset, its `data/`
   folder, or a DQN-replay `replay_logs` folder);
2. a Minari dataset id (`mujoco/hopper/medium-v0`, any namespace/name-vN) in Minari's local root
   (`$MINARI_DATASETS_PATH`, default ~/.minari/datasets; dema.data.minari_store);
3. a dataset id such as `hopper-medium-v2`, `hopper-medium-replay` or `D4RL/pointmaze/umaze-v2`,
   looked up in the search path (first hit wins):
       $DEMA_DATA_PATH (colon-separated folders), ./datasets, ~/.dema/datasets,
       the package's bundled folder (src/dema/bundled/)
   In each folder: `<id>.hdf5`, `<id>.h5`, `<id>.pkl` or a folder `<id>/`; an id without a
   version also matches `<id>-v<N>.*` (highest N), and a versioned id also matches the name without
   its version (so `hopper-medium-replay-v2` finds `hopper-medium-replay.hdf5`);
4. a Minari id found nowhere: downloaded into Minari's root by minari's own downloader (the
   `minari` extra), or a one-line error naming the id and `minari download ID`.
Formats are told apart by content where the name is not enough (HDF5 with `episode_*` groups is
Minari). The result is always checked by `dema.data.validate.validate`.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

import dema
from dema.data.dataset import OfflineDataset
from dema.data.validate import fail, validate
from dema.envs import DATASET_SUFFIXES, EnvSpec, is_minari_id, parse_dataset

BUNDLED = Path(dema.__file__).resolve().parent / "bundled"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def search_path() -> list[Path]:
    """Folders searched for dataset ids, in order (see the module docstring)."""
    folders = [Path(p).expanduser() for p in os.environ.get("DEMA_DATA_PATH", "").split(os.pathsep) if p]
    return folders + [Path.cwd() / "datasets", Path("~/.dema/datasets").expanduser(), BUNDLED]


def load_dataset(
    path_or_id: str | os.PathLike,
    env: str | EnvSpec | None = None,
    strict: bool = False,
    max_transitions: int | None = None,
) -> OfflineDataset:
    """Read and validate a dataset.

    `env` (a name like "hopper") adds the size checks; `strict` refuses an unfinished last
    episode; `max_transitions` keeps only the first episodes that fit in that many transitions
    (DQN-replay reads only those from disk).
    """
    if max_transitions is not None and max_transitions < 1:
        raise fail(str(path_or_id), f"--max-transitions {max_transitions} keeps no transition", "give a positive number, or leave it out to read everything")
    path = Path(path_or_id).expanduser()
    if not path.exists():
        path = resolve_id(str(path_or_id))
        if env is None and not is_minari_id(str(path_or_id)):  # "hopper-medium-v2" names its environment;
            env = parse_dataset(str(path_or_id)).env  # a Minari dataset records its own (dema.data.recorded_env)
    dataset = read_any(path, max_transitions)
    if max_transitions is not None and len(dataset) > max_transitions:
        dataset = head(dataset, max_transitions)
    return validate(dataset, env=env, strict=strict)


def load_training_data(path_or_id: str, max_transitions: int = 0, seed: int = 0) -> OfflineDataset:
    """The data of a run: a DQN-replay folder with `max_transitions` is sampled as Decision Transformer
    does (`dqn_replay_sampling`: whole episodes from checkpoints drawn at random, DT's 1% of a game
    at 500,000); everything else, and max_transitions 0, is `load_dataset` (the first episodes that
    fit in `max_transitions`)."""
    path = Path(path_or_id).expanduser()
    if max_transitions and path.is_dir():
        from dema.data.formats import dqn_replay

        if dqn_replay.replay_logs(path) is not None:
            from dema.data.formats.dqn_replay_sampling import sample_dqn_replay

            return validate(sample_dqn_replay(path, max_transitions, seed=seed))
    return load_dataset(path_or_id, max_transitions=max_transitions or None)


def head(dataset: OfflineDataset, max_transitions: int) -> OfflineDataset:
    """The whole episodes that fit in `max_transitions` (a cut episode if not even one fits)."""
    ends = np.flatnonzero((dataset.terminals | dataset.timeouts)[:max_transitions]) + 1
    n = int(ends[-1]) if len(ends) else max_transitions
    cut = {f: getattr(dataset, f)[:n] for f in ("observations", "actions", "rewards", "terminals", "timeouts")}
    if not len(ends):
        cut["timeouts"] = cut["timeouts"].copy()
        cut["timeouts"][-1] = True  # the kept part of the episode ends where the data stop
    return replace(
        dataset,
        **cut,
        next_observations=None if dataset.next_observations is None else dataset.next_observations[:n],
        infos={k: v[:n] for k, v in dataset.infos.items()},
        metadata={**dataset.metadata, "max_transitions": max_transitions},
    )


def resolve_id(dataset_id: str) -> Path:
    """The file or folder `dataset_id` names: a Minari id (namespace/name-vN) in Minari's local root,
    else the first match in the search path, else (a Minari id) downloaded by minari
    (dema.data.minari_store)."""
    from dema.data import minari_store

    if is_minari_id(dataset_id) and (found := minari_store.local_dataset(dataset_id)) is not None:
        return found
    searched = search_path()
    found = _in_search_path(dataset_id, searched)
    if found is not None:
        return found
    listed = ", ".join(str(f) for f in searched)
    if is_minari_id(dataset_id):
        return minari_store.fetch(dataset_id, searched=f"the search path ({listed})")
    if "/" in dataset_id and not dataset_id.endswith(DATASET_SUFFIXES):
        minari_store.check_id(dataset_id)  # neither a path nor a Minari id: what an id looks like
    raise fail(
        dataset_id,
        f"no such file, and no dataset of that id in the search path ({listed})",
        "give a path, put the file in one of those folders (DEMA_DATA_PATH=folder1:folder2 adds folders), or create it with `dema collect`",
    )


def _in_search_path(dataset_id: str, searched: list[Path]) -> Path | None:
    names = [dataset_id]
    unversioned = re.sub(r"-v\d+$", "", dataset_id)
    if unversioned != dataset_id:
        names.append(unversioned)
    for folder in searched:
        for name in names:
            for candidate in [folder / (name + s) for s in DATASET_SUFFIXES] + [folder / name]:
                if candidate.exists():
                    return candidate
        if unversioned == dataset_id:  # no version given: take the highest one present
            parent, stem = (folder / dataset_id).parent, Path(dataset_id).name
            hits = [p for p in parent.glob(f"{stem}-v*") if re.fullmatch(rf"{re.escape(stem)}-v(\d+)({'|'.join(map(re.escape, DATASET_SUFFIXES))})?", p.name)]
            if hits:
                return max(hits, key=lambda p: int(re.search(r"-v(\d+)", p.name[len(stem):]).group(1)))
    return None


def read_any(path: Path, max_transitions: int | None = None) -> OfflineDataset:
    """Pick the reader for an existing file or folder; a file that cannot be opened or holds values of
    the wrong type is a DataError naming it (the readers name the specific problems they know)."""
    try:
        return _read_any(path, max_transitions)
    except OSError as exc:  # permissions, a file vanished or unreadable on the way
        reason = exc.strerror or str(exc).strip().splitlines()[0]
        raise fail(str(path), f"cannot be read ({reason})", "check that the file exists and is readable by you (ls -l), or give another file") from None
    except (ValueError, TypeError) as exc:  # a value numpy cannot convert (text, objects)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise fail(str(path), f"holds values of an unexpected type ({first})", "store observations, actions, rewards, terminals and timeouts as numeric arrays") from None


def _read_any(path: Path, max_transitions: int | None = None) -> OfflineDataset:
    if path.is_dir():
        return _read_folder(path, max_transitions)
    if path.name.startswith("$store$_") or path.name.startswith("add_count_ckpt"):
        from dema.data.formats.dqn_replay import load_dqn_replay

        match = re.search(r"_ckpt\.(\d+)\.gz$", path.name)
        return load_dqn_replay(path.parent, checkpoints=[int(match.group(1))] if match else None, max_transitions=max_transitions)
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head == _HDF5_MAGIC or path.suffix in (".hdf5", ".h5"):
        if _is_minari_file(path):
            from dema.data.formats.minari import load_minari

            return load_minari(path.parent)
        from dema.data.formats.d4rl import load_d4rl

        return load_d4rl(path)
    if path.suffix in (".pkl", ".pickle") or head[:1] == b"\x80":
        from dema.data.formats.dt_pickle import load_dt_pickle

        return load_dt_pickle(path)
    raise fail(str(path), "unknown dataset format (not HDF5, a pickle, or a DQN-replay checkpoint)", "give a D4RL .hdf5, a Minari dataset folder, a Decision-Transformer .pkl or a DQN-replay folder")


def _read_folder(path: Path, max_transitions: int | None) -> OfflineDataset:
    for data in (path / "data", path):
        if (data / "main_data.hdf5").exists() or (data / "metadata.json").is_file():  # hdf5 or arrow storage
            from dema.data.formats.minari import load_minari

            return load_minari(data)
    from dema.data.formats.dqn_replay import load_dqn_replay, replay_logs

    logs = replay_logs(path)  # the folder itself, its replay_logs/, or a game folder's <run>/replay_logs/
    if logs is not None:
        return load_dqn_replay(logs, max_transitions=max_transitions)
    found = sorted(p.name for p in path.iterdir())[:10]
    raise fail(
        str(path),
        f"a folder that is neither a Minari dataset (data/main_data.hdf5) nor DQN-replay checkpoints ($store$_*_ckpt.N.gz); it holds: {', '.join(found) or 'nothing'}",
        "name the dataset file itself, or the dataset's own folder",
    )


def _is_minari_file(path: Path) -> bool:
    """Minari's hdf5 holds one `episode_<i>` group per episode; D4RL's holds flat arrays."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            return "observations" not in file and any(key.startswith("episode_") for key in file.keys())
    except (OSError, KeyError, RuntimeError):
        return False  # the D4RL reader reports the corrupt file with its own message
