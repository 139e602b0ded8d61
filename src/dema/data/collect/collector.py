"""Collect one recipe into one D4RL hdf5 file: stages -> rollouts (each written and flushed to
`<out>.partial.hdf5` as soon as it is collected) -> statistics -> the finished file renamed onto `out`.
A full disk or Ctrl-C stops the collection with the stages written so far kept in the partial file
(dema.data.collect.writer.PartialWriter)."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from tqdm import tqdm

from dema.data.collect.recipes import APPROXIMATION_NOTE, build_stages
from dema.data.collect.rollout import concatenate, rollout
from dema.data.collect.writer import PartialWriter, check_writable
from dema.data.episodes import collection_stats
from dema.envs import EnvSpec
from dema.errors import DemaError
from dema.provenance import versions


def collect(
    spec: EnvSpec,
    recipe: str,
    out: Path,
    steps: int | None = None,
    seed: int = 0,
    num_envs: int = 16,
    policy_dir: Path | None = None,
    policy_path: Path | None = None,
    vector_mode: str = "sync",
    overwrite: bool = False,
    progress: bool = True,
    command: str = "",
    next_observations: bool = True,
) -> tuple[Path, dict]:
    """Run the recipe's stages one after another and write the result; returns (path, metadata)."""
    check_writable(out, overwrite)  # fail before the work, not after it
    stages = build_stages(spec, recipe, steps, policy_dir, policy_path)
    total = sum(s.steps for s in stages)
    _warn_space(out, total, spec, next_observations)
    bar = tqdm(total=total, desc=f"{spec.name}-{recipe}", unit="step", disable=not progress, smoothing=0.05)
    head = {"env_id": spec.gym_id, "env_name": spec.name, "recipe": recipe, "seed": seed, "command": command}
    writer = PartialWriter(out, overwrite, next_observations, head)
    try:
        with writer:
            path, meta = _collect(spec, recipe, stages, writer, bar, seed, num_envs, vector_mode, command)
    except BaseException as exc:
        if writer.kept and not isinstance(exc, DemaError):  # a DemaError (a failed write) says it itself
            print(f"dema collect: stopped. {writer.kept}", file=sys.stderr)
        raise
    finally:
        bar.close()
    return path, meta


def _collect(spec, recipe, stages, writer, bar, seed, num_envs, vector_mode, command) -> tuple[Path, dict]:
    start = time.perf_counter()
    parts = []
    for k, stage in enumerate(stages):
        bar.set_postfix_str(stage.label)
        # Each stage gets its own seed block, so no two stages replay the same start states.
        parts.append(rollout(spec.gym_id, stage, num_envs, seed + 1000 * k, vector_mode, bar))
        writer.append(parts[-1])  # on disk now: a later failure keeps it
    seconds = time.perf_counter() - start
    bar.close()
    data = concatenate(parts)
    total = sum(s.steps for s in stages)
    stats = collection_stats(data, spec.normalize)
    meta = {
        "env_id": spec.gym_id,
        "env_name": spec.name,
        "recipe": recipe,
        "seed": seed,
        "steps": int(total),
        "num_envs": int(min(num_envs, total)),
        "vector_mode": vector_mode,
        "policy": "; ".join(f"{s.label} x {s.steps}" for s in stages),
        "stages": [
            {"label": s.label, "steps": s.steps, "source": getattr(s.policy, "source", ""),
             "deterministic": s.deterministic, "noise_std": s.noise_std}
            for s in stages
        ],
        "episode_stats": stats,
        **{k: v for k, v in stats.items()},
        "ref_min_score": spec.ref_min_score,
        "ref_max_score": spec.ref_max_score,
        "collect_seconds": round(seconds, 2),
        "steps_per_second": round(total / seconds, 1),
        "versions": versions(),
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if recipe == "medium-replay":
        meta["approximation"] = APPROXIMATION_NOTE
    return writer.finish(meta), meta


def _warn_space(out: Path, steps: int, spec: EnvSpec, next_observations: bool) -> None:
    """A warning up front when the folder may not hold the dataset (uncompressed size: an upper bound)."""
    from dema.data.collect.writer import space_needed

    need = space_needed(steps * (4 * spec.obs_dim * (2 if next_observations else 1) + 4 * spec.act_dim + 4 + 2))
    try:
        free = shutil.disk_usage(out.parent).free
    except OSError:
        return
    if free < need:
        print(f"dema collect: warning: {free / 2**20:.0f} MiB free in {out.parent}, and the dataset may need up to "
              f"{need / 2**20:.0f} MiB; if the disk fills, collection stops and keeps the stages written so far",
              file=sys.stderr)
