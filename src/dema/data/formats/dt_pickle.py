"""Decision Transformer's pickles: a list of episode dicts of numpy arrays.

DT's `data/download_d4rl_datasets.py` writes `{env}-{dataset}-v2.pkl`, a list with one dict per
episode: `observations` (T, S), `next_observations`, `actions` (T, A), `rewards` (T,),
`terminals` (T,) (some forks: `dones`). An episode that ends without `terminals[-1]` was cut by
the time limit or the end of the data, so its last step is read as a timeout.

Pickles can run arbitrary code when loaded, so this reader uses a restricted unpickler: it builds
lists, dicts, numbers, strings and numpy arrays/scalars, and refuses every other global (a
`DataError` naming the global). Nothing outside `_ALLOWED` is ever imported.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from dema.data.dataset import OfflineDataset
from dema.data.validate import fail, require_keys

# The globals numpy's own pickles need (numpy 1.x spells `numpy.core`, 2.x `numpy._core`),
# plus `_codecs.encode`, which protocols 0-2 use to store bytes.
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class RefusedGlobal(pickle.UnpicklingError):
    pass


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An Unpickler whose `find_class` resolves only the numpy array machinery."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise RefusedGlobal(f"{module}.{name}")
        return super().find_class(module, name)


def load_dt_pickle(path: str | Path) -> OfflineDataset:
    src = str(path)
    try:
        with open(path, "rb") as handle:
            episodes = NumpyOnlyUnpickler(handle).load()
    except RefusedGlobal as exc:
        raise fail(
            src,
            f"the pickle asks for `{exc}`, which could run code when loaded; refused",
            "only lists/dicts of numpy arrays are read: re-save the episodes as plain arrays, or convert to D4RL hdf5",
        ) from None
    except Exception as exc:  # noqa: BLE001 - whatever a damaged stream raises, the file is the problem
        raise fail(src, f"cannot be unpickled ({type(exc).__name__}: {exc}): the file is truncated or corrupt", "download or write it again") from None

    if not isinstance(episodes, (list, tuple)) or not all(isinstance(e, dict) for e in episodes):
        raise fail(src, f"holds a {type(episodes).__name__}, not a list of episode dicts", "store a list with one dict of arrays per episode (DT's format)")
    if not episodes:
        raise fail(src, "the dataset is empty (0 episodes)", "collect or download it again; the file holds no data")

    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")}
    for i, episode in enumerate(episodes):
        require_keys(src, list(episode), ("observations", "actions", "rewards"), where=f" in episode {i}")
        done_key = "terminals" if "terminals" in episode else "dones"
        require_keys(src, list(episode), (done_key,), where=f" in episode {i} (`terminals` or `dones`)")
        rewards = _array(episode, "rewards", i, src).astype(np.float32).reshape(-1)
        terminals = _array(episode, done_key, i, src).reshape(-1) != 0
        timeouts = np.zeros_like(terminals)
        if len(terminals) and not terminals[-1]:
            timeouts[-1] = True  # cut by the time limit or the end of the data
        observations, actions = _array(episode, "observations", i, src), _array(episode, "actions", i, src)
        sizes = {"observations": len(observations), "actions": len(actions), "rewards": len(rewards), done_key: len(terminals)}
        if len(set(sizes.values())) > 1:
            listed = ", ".join(f"{k} {v}" for k, v in sizes.items())
            raise fail(src, f"episode {i} has arrays of different lengths ({listed})", "every field of an episode needs one row per step")
        parts["observations"].append(observations)
        parts["actions"].append(actions)
        parts["rewards"].append(rewards)
        parts["terminals"].append(terminals)
        parts["timeouts"].append(timeouts)
        if "next_observations" in episode:
            parts["next_observations"].append(_array(episode, "next_observations", i, src))

    try:
        arrays = {k: np.concatenate(v) for k, v in parts.items() if v}
    except ValueError as exc:
        raise fail(src, f"episodes disagree on array shapes ({exc})", "every episode needs the same observation and action sizes") from None
    observations = arrays["observations"]
    if observations.dtype != np.uint8:
        observations = observations.astype(np.float32)
    actions = arrays["actions"]
    actions = actions.astype(np.float32) if actions.dtype.kind == "f" else actions.astype(np.int64)
    next_observations = arrays.get("next_observations")
    if next_observations is not None and len(parts["next_observations"]) != len(episodes):
        next_observations = None  # only some episodes have them: drop rather than misalign
    return OfflineDataset(
        observations=observations,
        actions=actions,
        rewards=arrays["rewards"],
        terminals=arrays["terminals"],
        timeouts=arrays["timeouts"],
        metadata={"name": Path(path).stem, "pickle_episodes": len(episodes)},
        format="dt-pickle",
        source=src,
        next_observations=None if next_observations is None else next_observations.astype(np.float32),
    )


def _array(episode: dict, key: str, index: int, src: str) -> np.ndarray:
    try:
        value = np.asarray(episode[key])
        if value.dtype.kind not in "biuf":
            raise TypeError(f"dtype {value.dtype}")
        return value
    except (TypeError, ValueError) as exc:
        raise fail(src, f"episode {index}: `{key}` is not a numeric array ({exc})", "store every episode field as a numpy array of numbers") from None
