"""Scoring a policy in the simulator, and loading a trained run to score it.

`evaluate` rolls a policy out for every (target, seed) pair, `episodes` episodes each, and reports
raw returns and D4RL-normalised scores (`dema.envs`: 100 * (R - min) / (max - min)) as mean and std
over all episodes of all seeds, per target. The first target is the headline figure (the
environment table lists the paper's main target first); every target is reported.

A run directory (`dema.run.RunDir`) holds everything evaluation needs, without the dataset:
config.json (the TrainConfig), normalization.json (state mean/std, reward scale, delayed, env),
model.safetensors (final weights) and best.safetensors (best evaluation during training).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dema import provenance
from dema.envs import EnvSpec
from dema.errors import ConfigError, DemaError
from dema.evaluation.agent import make_agent
from dema.evaluation.rollout import run_episodes
from dema.run import CHECKPOINTS, LoadedRun, NormStats, RunDir


def evaluate(policy, model_config, stats: NormStats, spec: EnvSpec, episodes: int, seeds: tuple[int, ...],
             targets: tuple[float, ...] = (), max_envs: int = 50, max_episode_steps: int = 0,
             device: str = "cpu") -> dict:
    """Mean/std of returns and normalised scores per target over `episodes` x `seeds` episodes."""
    targets = tuple(targets) or spec.return_targets
    was_training = policy.training
    policy.eval()
    try:
        per_target = []
        for target in targets:
            returns, lengths, per_seed = [], [], []
            act_seconds, act_calls = 0.0, 0
            for seed in seeds:
                factory = lambda n: make_agent(policy, stats, n, model_config.context_len, spec.act_dim,
                                               model_config.recurrent, device)
                result = run_episodes(factory, spec.gym_id, episodes, seed * 10_000, target, max_envs,
                                      max_episode_steps)
                returns += result.returns
                lengths += result.lengths
                act_seconds += result.act_seconds
                act_calls += result.act_calls
                per_seed.append({"seed": seed, **_summary(result.returns, spec)})
            per_target.append({"target": target, **_summary(returns, spec), "per_seed": per_seed,
                               "returns": returns, "lengths": lengths,
                               "act_ms_per_call": 1000.0 * act_seconds / max(act_calls, 1)})
    finally:
        policy.train(was_training)
    headline = {k: per_target[0][k] for k in ("return_mean", "return_std", "normalized_mean", "normalized_std", "episodes")}
    return {**headline, "targets": list(targets), "seeds": list(seeds), "episodes_per_seed": episodes,
            "per_target": per_target}


def _summary(returns: list[float], spec: EnvSpec) -> dict:
    raw = np.asarray(returns, dtype=np.float64)
    norm = np.array([spec.normalize(r) for r in raw])
    return {"return_mean": float(raw.mean()), "return_std": float(raw.std()),
            "normalized_mean": float(norm.mean()), "normalized_std": float(norm.std()), "episodes": len(raw)}


# ----------------------------------------------------------------------------- trained runs


def load_run(run_dir: Path) -> LoadedRun:
    return RunDir(run_dir).load()


def load_policy(run: LoadedRun, weights: Path, device: str = "cpu"):
    from safetensors.torch import load_file

    from dema.models import build_policy

    if not weights.is_file():
        raise DemaError(f"{weights} does not exist; the run has no such checkpoint yet")
    policy = build_policy(run.config.model, state_dim=run.state_dim, act_dim=run.act_dim)
    policy.load_state_dict(load_file(str(weights), device=device))
    return policy.to(device)


def evaluate_run(run_dir: Path, checkpoints: tuple[str, ...] = ("final", "best"), episodes: int | None = None,
                 seeds: tuple[int, ...] | None = None, targets: tuple[float, ...] | None = None,
                 max_episode_steps: int | None = None, device: str = "cpu") -> dict:
    """Score the run's checkpoints; returns the eval.json content (final checkpoint at top level)."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    ev = run.config.eval
    choices = {
        "episodes": ev.episodes if episodes is None else episodes,
        "seeds": tuple(ev.seeds if seeds is None else seeds),
        "targets": tuple((ev.targets if targets is None else targets) or run.spec.return_targets),
        "max_episode_steps": ev.max_episode_steps if max_episode_steps is None else max_episode_steps,
    }
    unknown = [c for c in checkpoints if c not in CHECKPOINTS]
    if unknown:
        raise ConfigError(f"unknown checkpoint {unknown}; choose from {sorted(CHECKPOINTS)}")
    results, params = {}, None
    run_files = RunDir(run_dir)
    for name in checkpoints:
        weights = run_files.checkpoint(name)
        if name == "best" and not weights.is_file():
            continue  # no evaluation happened during training
        policy = load_policy(run, weights, device)
        params = sum(p.numel() for p in policy.parameters())
        torch.manual_seed(0)  # acting is deterministic; this only pins anything stochastic
        step = run_files.checkpoint_step(name)
        results[name] = {"checkpoint": weights.name, **({"checkpoint_step": step} if step is not None else {}),
                         **evaluate(policy, run.config.model, run.stats, run.spec, choices["episodes"],
                                    choices["seeds"], choices["targets"], ev.max_envs,
                                    choices["max_episode_steps"], device)}
    if "final" not in results:
        raise DemaError(f"{run_dir}: no final checkpoint (model.safetensors) to evaluate")
    report = dict(results["final"])
    report["best_checkpoint"] = results.get("best")
    report["best_during_training"] = run_files.best_evaluation()
    report["training"] = _training_time(run_files)
    report.update({
        "run_dir": str(run_dir), "dataset": run.config.data.dataset, "model": run.config.model_name, "params": params,
        "protocol": run.config.protocol, "train_seed": run.config.seed, "updates": run.config.schedule.updates,
        "env": run.spec.gym_id, "max_episode_steps": choices["max_episode_steps"] or run.spec.max_episode_steps,
        "delayed": run.stats.delayed, "reward_scale": run.stats.reward_scale, "versions": versions(),
        "reference_scores": {"min": run.spec.ref_min_score, "max": run.spec.ref_max_score},
    })
    return report


def write_eval(run_dir: Path, report: dict) -> Path:
    """eval.json in the run directory (replaced atomically)."""
    return RunDir(run_dir).write_eval(report)


def _training_time(run: RunDir) -> dict | None:
    if not run.train_state.is_file():
        return None
    state = torch.load(run.train_state, map_location="cpu", weights_only=True)
    return {"step": state["step"], "train_seconds": state["train_seconds"], "wall_seconds": state.get("wall_seconds")}


def versions() -> dict:
    """Package versions and the machine, recorded next to every score."""
    return {**provenance.versions(), **provenance.machine()}
