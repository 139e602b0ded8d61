"""`dema collect ENV RECIPE --format minari [--id dema/hopper/medium-v0]`: a collection written as a
Minari dataset through minari's own writer (`minari.create_dataset_from_buffers`), so that
`minari.load_dataset` and `minari show` read it.

The collection is the D4RL one of the same recipe and seed (dema.data.collect.collector, into a
hidden work folder beside Minari's root), cut into its episodes: episode k's observations are its
D4RL rows followed by the last row's next observation (Minari stores T+1), its terminations and
truncations the D4RL terminals and timeouts. So the arrays are those of the D4RL file (tested).

Metadata, as Minari expects it: the env spec (Gymnasium's, of the v5 environment collected in),
`algorithm_name` (the recipe and its behaviour policies), `code_permalink` (dema's version and
commit), `author`, `description`, `requirements` (the simulator's versions), and the reference
scores measured here for v5 (dema.envs `measured_ref_scores`, docs/DATASETS.md). dema's own record of
the collection (stages, seed, command, statistics, versions) is under `dema_collect`.

Safety as for D4RL files: an existing id is refused unless --overwrite; the dataset is written under
a temporary root and moved into Minari's root only when complete, so an interrupted collection or a
failed write leaves no half dataset under the id.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from dema import provenance
from dema.data.minari_store import minari_root
from dema.envs import MINARI_ID_FORM, EnvSpec, is_minari_id
from dema.errors import ConfigError, DataError

WRITABLE_RECIPES = ("random", "medium", "expert", "medium-expert", "medium-replay")


def default_id(spec: EnvSpec, recipe: str) -> str:
    return f"dema/{spec.name}/{recipe}-v0"


def check_request(spec: EnvSpec, recipe: str, dataset_id: str, out, overwrite: bool) -> Path:
    """Refuse before any collection what cannot be written; returns the dataset's folder to be."""
    if recipe not in WRITABLE_RECIPES:
        raise ConfigError(f"--format minari writes the recipes {', '.join(WRITABLE_RECIPES)} of hopper, halfcheetah "
                          f"and walker2d; collect {recipe} in D4RL format (the default) instead")
    if out is not None:
        raise ConfigError(f"--out names a D4RL file; a Minari dataset goes into Minari's root ({minari_root()}, "
                          "$MINARI_DATASETS_PATH) under its --id: drop --out, or set MINARI_DATASETS_PATH")
    if not is_minari_id(dataset_id):
        raise ConfigError(f"--id {dataset_id}: not a Minari dataset id ({MINARI_ID_FORM}), e.g. "
                          f"{default_id(spec, recipe)}")
    if spec.measured_ref_scores is None:
        raise ConfigError(f"{spec.gym_id} has no reference scores measured here yet (`dema collect {spec.name} "
                          "reference-scores`); a Minari dataset of dema carries them")
    try:
        import minari  # noqa: F401
    except ImportError:
        raise ConfigError('--format minari writes through minari, which is not installed: pip install -e ".[minari]"') from None
    folder = minari_root() / dataset_id
    if folder.exists() and not overwrite:
        raise DataError(f"{folder} already exists (Minari dataset {dataset_id}); pass --overwrite to replace it or "
                        "choose another --id")
    return folder


def collect_minari(spec: EnvSpec, recipe: str, dataset_id: str | None, out, overwrite: bool, collect_into,
                   author: str = "dema", author_email: str | None = None) -> tuple[str, Path, dict]:
    """Check, collect (`collect_into(path)` -> (path, meta): the D4RL collector of the recipe, writing
    next_observations), write through minari; (the id, its folder, the collection's metadata)."""
    dataset_id = dataset_id or default_id(spec, recipe)
    check_request(spec, recipe, dataset_id, out, overwrite)
    root = minari_root()
    made_root = not root.exists()
    work = root / f".dema-collect-{os.getpid()}"  # hidden: minari's listings skip it
    work.mkdir(parents=True, exist_ok=True)
    try:
        collection, meta = collect_into(work / "collection.hdf5")
        folder = write_minari(spec, dataset_id, collection, meta, overwrite, author, author_email)
    except BaseException:
        if not any(work.glob("*.partial.hdf5")):  # else the collector said it keeps the stages written so far
            shutil.rmtree(work, ignore_errors=True)
            if made_root and root.is_dir() and not any(root.iterdir()):
                root.rmdir()
        raise
    shutil.rmtree(work, ignore_errors=True)
    return dataset_id, folder, meta


def write_minari(spec: EnvSpec, dataset_id: str, collection: Path, meta: dict, overwrite: bool,
                 author: str = "dema", author_email: str | None = None) -> Path:
    """The D4RL `collection` file (with next_observations) as the Minari dataset `dataset_id`, through
    minari's writer, moved into Minari's root when complete; returns its folder."""
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    with h5py.File(collection, "r") as file:
        data = {key: file[key][()] for key in ("observations", "next_observations", "actions", "rewards",
                                               "terminals", "timeouts")}
    env = gym.make(spec.gym_id)
    obs_dtype, act_dtype = env.observation_space.dtype, env.action_space.dtype
    env.close()
    ends = np.flatnonzero(data["terminals"] | data["timeouts"]) + 1
    starts = np.concatenate([[0], ends[:-1]])
    buffers = [EpisodeBuffer(
        # (T+1, S): the episode's observations and the one its last step led to (float32 values, exact in float64)
        observations=np.concatenate([data["observations"][s:e], data["next_observations"][e - 1:e]]).astype(obs_dtype),
        actions=data["actions"][s:e].astype(act_dtype), rewards=data["rewards"][s:e].astype(np.float64),
        terminations=data["terminals"][s:e], truncations=data["timeouts"][s:e]) for s, e in zip(starts, ends)]
    root = minari_root()
    work = collection.parent / "minari"
    low, high = spec.measured_ref_scores
    with _minari_root(work), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # minari's notes on the optional fields left out (eval_env)
        dataset = minari.create_dataset_from_buffers(
            dataset_id, buffers, env=spec.gym_id, algorithm_name=algorithm_name(meta),
            author=author, author_email=author_email,
            code_permalink=code_permalink(), ref_min_score=low, ref_max_score=high,
            description=description(spec, meta), requirements=requirements(), data_format="hdf5")
        dataset.storage.update_metadata({"dema_collect": json.loads(json.dumps(meta, default=_plain))})
    return _move_into(work, root, dataset_id, overwrite)


def algorithm_name(meta: dict) -> str:
    """The recipe and its behaviour policies: "dema collect medium: sac-Hopper stochastic x 1000000"."""
    return f"dema collect {meta['recipe']}: {meta['policy']}"


def code_permalink() -> str:
    """dema's version and the commit of the checkout that collected (no public URL is known to dema)."""
    version = provenance.versions().get("dema", "?")
    commit = provenance.git_commit()
    return f"dema {version}" + (f", commit {commit}" if commit else "") + ": src/dema/data/collect/"


def description(spec: EnvSpec, meta: dict) -> str:
    low, high = spec.measured_ref_scores
    text = (f"Collected by `{meta['command']}` in {spec.gym_id}: recipe {meta['recipe']} ({meta['policy']}), seed "
            f"{meta['seed']}, {meta['transitions']} transitions in {meta['episodes']} episodes. Reference scores "
            f"measured in {spec.gym_id} (100 episodes each): random actions {low:.1f}, the best behaviour policy dema "
            f"ships {high:.1f} (docs/DATASETS.md of dema).")
    if meta.get("approximation"):
        text += f" Note: {meta['approximation']}."
    return text


def requirements() -> list[str]:
    versions = provenance.versions()
    return [f"{name}=={versions[name]}" for name in ("gymnasium", "mujoco") if name in versions]


def _plain(value):
    return value.item() if isinstance(value, np.generic) else str(value)


@contextmanager
def _minari_root(folder: Path):
    """Minari's writer puts a dataset under $MINARI_DATASETS_PATH (minari.storage.get_dataset_path):
    point it at `folder` for the write, and back. An environment write, because minari reads its
    root only from that variable (minari.storage.datasets_root_dir) and takes no path argument."""
    before = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = before


def _move_into(work: Path, root: Path, dataset_id: str, overwrite: bool) -> Path:
    """Move the finished dataset (and any namespace metadata the root lacks) from `work` into `root`."""
    target = root / dataset_id
    target.parent.mkdir(parents=True, exist_ok=True)
    namespace = Path(dataset_id).parent
    for level in [namespace, *namespace.parents][:-1]:  # mujoco/hopper, then mujoco
        made = work / level / "namespace_metadata.json"
        if made.is_file() and not (root / level / "namespace_metadata.json").exists():
            shutil.copy2(made, root / level / "namespace_metadata.json")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        if not overwrite:  # appeared while collecting
            raise DataError(f"{target} appeared while collecting; pass --overwrite to replace it or choose another --id")
        os.replace(target, old)
    os.replace(work / dataset_id, target)
    shutil.rmtree(old, ignore_errors=True)
    return target
