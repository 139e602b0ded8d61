"""Minari local datasets: hdf5 storage read with h5py alone, arrow storage through minari itself.

On disk (Minari 0.4+, `MINARI_DATASETS_PATH`, default `~/.minari/datasets`):

    <root>/<namespace>/<name>-v<N>/data/main_data.hdf5
    <root>/<namespace>/<name>-v<N>/data/metadata.json   (older versions: one folder up)

`main_data.hdf5` holds one group per episode, `episode_<i>`, with `observations` (T+1 rows: the
final observation is included), `actions` (T), `rewards`, `terminations`, `truncations` (T) and
optional `infos`. Dict observations are groups of arrays: they are flattened by concatenating
the keys in sorted order, which is the order `gymnasium.spaces.flatten` uses for a Dict space
(recorded as `obs_keys` in the metadata). An episode whose last step is neither terminated nor
truncated (collection stopped) ends with a timeout.

Arrow (and parquet) storage, `data/<episode>/` folders of arrow files, is read through minari's own
reader (`minari.MinariDataset`), which the `minari` extra installs with pyarrow; the episodes come
out the same as hdf5's and go through the same checks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np

from dema.data.dataset import OfflineDataset
from dema.data.validate import fail, require_keys, require_numeric


def load_minari(data_dir: str | Path) -> OfflineDataset:
    """Read the Minari dataset whose `data/` folder (holding metadata.json) is `data_dir`."""
    data_dir = Path(data_dir)
    metadata = _metadata(data_dir)
    fmt = metadata.get("data_format", "hdf5")
    main = data_dir / "main_data.hdf5"
    if fmt == "hdf5" and main.exists():
        src = str(main)
        episodes, obs_keys = _read_hdf5(main)
    elif fmt in ("arrow", "parquet"):
        src = str(data_dir)
        episodes, obs_keys = _read_with_minari(data_dir, fmt)
    else:
        raise fail(str(data_dir), f"a Minari dataset in `{fmt}` storage{' without its main_data.hdf5' if fmt == 'hdf5' else ''}, "
                                  "which dema cannot read",
                   "download it again (`minari download ID --force-download`); dema reads hdf5 and arrow storage")
    if not episodes:
        raise fail(src, "the dataset is empty (no episodes)", "collect or download it again; it holds no data")

    def cat(key):
        return np.concatenate([e[key] for e in episodes])

    try:
        observations, actions = cat("observations"), cat("actions")
        next_observations = cat("next_observations")
    except ValueError as exc:
        raise fail(src, f"episodes disagree on array shapes ({exc})", "every episode needs the same observation and action sizes") from None
    if observations.dtype != np.uint8:
        observations, next_observations = observations.astype(np.float32), next_observations.astype(np.float32)
    actions = actions.astype(np.float32) if actions.dtype.kind == "f" else actions.astype(np.int64)
    if actions.ndim == 2 and actions.dtype == np.int64 and actions.shape[1] == 1:
        actions = actions[:, 0]  # Discrete actions stored as (T, 1)
    if obs_keys:
        metadata["obs_keys"] = obs_keys
    for key in ("observation", "action"):  # the recorded spaces' shapes, checked against the environment's
        shape = _box_shape(metadata.get(f"{key}_space"))
        if shape is not None:
            metadata[f"{key}_space_shape"] = shape
    env_spec = metadata.get("env_spec")
    if isinstance(env_spec, str):
        try:
            metadata.setdefault("env_id", json.loads(env_spec).get("id"))
        except (ValueError, AttributeError):
            pass
    return OfflineDataset(
        observations=observations,
        actions=actions,
        rewards=cat("rewards"),
        terminals=cat("terminals"),
        timeouts=cat("timeouts"),
        metadata={k: v for k, v in metadata.items() if k not in ("observation_space", "action_space")},
        format="minari",
        source=src,
        next_observations=next_observations,
    )


def _read_hdf5(main: Path) -> tuple[list[dict], list[str]]:
    """The episodes of main_data.hdf5, in order, and the keys of a Dict observation (else [])."""
    src = str(main)
    try:
        with h5py.File(main, "r") as file:
            names = sorted((k for k in file.keys() if re.fullmatch(r"episode_\d+", k)), key=lambda k: int(k.split("_")[1]))
            episodes = [_episode(file[name], f"{src}:{name}") for name in names]
            return episodes, (_obs_keys(file[names[0]]["observations"]) if names else [])
    except (OSError, KeyError, RuntimeError) as exc:  # h5py: truncated, or a corrupt object header
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise fail(src, f"cannot be read as HDF5 ({first}): the file is truncated or corrupt", "download or collect it again") from None


def _read_with_minari(data_dir: Path, fmt: str) -> tuple[list[dict], list[str]]:
    """The episodes of arrow (or parquet) storage, through minari's reader."""
    try:
        import minari
    except ImportError:
        raise fail(str(data_dir), f"a Minari dataset in `{fmt}` storage, which dema reads through minari",
                   'pip install -e ".[minari]" (minari with pyarrow)') from None
    try:
        dataset = minari.MinariDataset(data_dir)
        episodes, obs_keys = [], []
        for i, episode in enumerate(dataset.iterate_episodes()):
            if i == 0:
                obs_keys = _dict_keys(episode.observations)
            episodes.append(_assemble(f"{data_dir}:episode {episode.id}", _flat(episode.observations),
                                      _flat(episode.actions), episode.rewards, episode.terminations, episode.truncations))
        return episodes, obs_keys
    except ImportError as exc:  # pyarrow missing: minari's message says how to install it
        raise fail(str(data_dir), f"minari cannot read `{fmt}` storage here ({exc})", 'pip install -e ".[minari]"') from None
    except (OSError, ValueError, KeyError, AssertionError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise fail(str(data_dir), f"cannot be read by minari ({type(exc).__name__}: {first}): the dataset is damaged",
                   "download or collect it again") from None


def _box_shape(space) -> list[int] | None:
    """The shape of a Box space as minari serialises it (JSON text), None for any other space."""
    try:
        data = json.loads(space) if isinstance(space, str) else space
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("type") == "Box" and isinstance(data.get("shape"), list):
        return [int(n) for n in data["shape"]]
    return None


def _metadata(data_dir: Path) -> dict:
    for candidate in (data_dir / "metadata.json", data_dir.parent / "metadata.json"):
        if candidate.exists():
            try:
                return json.loads(candidate.read_text())
            except ValueError as exc:
                raise fail(str(candidate), f"is not valid JSON ({exc})", "restore the dataset's metadata.json") from None
    return {}


def _episode(group: h5py.Group, src: str) -> dict[str, np.ndarray]:
    require_keys(src, list(group.keys()), ("observations", "actions", "rewards", "terminations", "truncations"))
    return _assemble(src, _flatten(group["observations"]), _flatten(group["actions"]),
                     require_numeric(src, "rewards", np.asarray(group["rewards"][()])),
                     group["terminations"][()], group["truncations"][()])


def _assemble(src: str, obs: np.ndarray, actions: np.ndarray, rewards, terminations, truncations) -> dict[str, np.ndarray]:
    """One episode's arrays in dema's layout: observations (T+1 in Minari) split into observations and
    next_observations, flags as bools, an episode that stopped mid-way ending with a timeout."""
    rewards = np.asarray(rewards).astype(np.float32).reshape(-1)
    steps = len(rewards)
    if len(obs) != steps + 1:
        raise fail(src, f"{len(obs)} observations for {steps} steps (Minari stores T+1)", "the episode is cut short; collect or download it again")
    terminals = np.asarray(terminations).reshape(-1) != 0
    timeouts = np.asarray(truncations).reshape(-1) != 0
    sizes = {"actions": len(actions), "rewards": steps, "terminations": len(terminals), "truncations": len(timeouts)}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{k} {v}" for k, v in sizes.items())
        raise fail(src, f"arrays of different lengths ({listed})", "every field of an episode needs one row per step; collect or download it again")
    if steps and not (terminals[-1] or timeouts[-1]):
        timeouts = timeouts.copy()
        timeouts[-1] = True  # collection stopped mid-episode
    return {
        "observations": obs[:-1],
        "next_observations": obs[1:],
        "actions": actions,
        "rewards": rewards,
        "terminals": terminals,
        "timeouts": timeouts,
    }


def _flat(value) -> np.ndarray:
    """What minari's reader returns for one episode's field -> (T, features): Dict spaces' keys in sorted
    order, as for hdf5."""
    if isinstance(value, dict):
        parts = [_flat(value[key]) for key in sorted(value)]
        return np.concatenate([p.reshape(len(p), -1).astype(np.float32) for p in parts], axis=1)
    return require_numeric("episode", "values", np.asarray(value))


def _dict_keys(value) -> list[str]:
    if not isinstance(value, dict):
        return []
    return [f"{k}/{sub}" if sub else k for k in sorted(value) for sub in (_dict_keys(value[k]) or [""])]


def _flatten(item) -> np.ndarray:
    """A dataset, or a (nested) Dict-space group -> (T, features), keys in sorted order."""
    if isinstance(item, h5py.Dataset):
        return require_numeric(item.file.filename, item.name, np.asarray(item[()]))
    parts = [_flatten(item[key]) for key in sorted(item.keys())]
    return np.concatenate([p.reshape(len(p), -1).astype(np.float32) for p in parts], axis=1)


def _obs_keys(item) -> list[str]:
    if isinstance(item, h5py.Dataset):
        return []
    return [f"{k}/{sub}" if sub else k for k in sorted(item.keys()) for sub in (_obs_keys(item[k]) or [""])]
