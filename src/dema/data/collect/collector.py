"""Collect one recipe into one D4RL hdf5 file: stages -> rollouts -> statistics -> atomic write."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dema.data.collect.recipes import APPROXIMATION_NOTE, build_stages
from dema.data.collect.rollout import concatenate, episode_returns, rollout
from dema.data.collect.writer import check_writable, package_versions, write_hdf5
from dema.envs import EnvSpec


def return_stats(data: dict[str, np.ndarray], spec: EnvSpec | None = None) -> dict:
    """Episodes, transitions and the episode return mean/std/min/max (+ D4RL-normalised mean)."""
    returns = episode_returns(data["rewards"], data["terminals"], data["timeouts"])
    stats = {
        "episodes": int(len(returns)),
        "transitions": int(len(data["rewards"])),
        "terminal_episodes": int(np.asarray(data["terminals"]).sum()),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
    }
    if spec is not None:
        stats["normalized_return_mean"] = float(spec.normalize(stats["return_mean"]))
    return stats


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
    bar = tqdm(total=total, desc=f"{spec.name}-{recipe}", unit="step", disable=not progress, smoothing=0.05)
    start = time.perf_counter()
    parts = []
    for k, stage in enumerate(stages):
        bar.set_postfix_str(stage.label)
        # Each stage gets its own seed block, so no two stages replay the same start states.
        parts.append(rollout(spec.gym_id, stage, num_envs, seed + 1000 * k, vector_mode, bar))
    seconds = time.perf_counter() - start
    bar.close()
    data = concatenate(parts)
    stats = return_stats(data, spec)
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
        "versions": package_versions(),
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if recipe == "medium-replay":
        meta["approximation"] = APPROXIMATION_NOTE
    write_hdf5(out, data, meta, overwrite=overwrite, next_observations=next_observations)
    return out, meta
