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
from dema.evaluation.simulators import make_vector_env
from dema.evaluation.video import Recording
from dema.run import CHECKPOINTS, LoadedRun, NormStats, RunDir
from dema.run.checkpoint import training_time


def evaluate(policy, model_config, stats: NormStats, spec: EnvSpec, episodes: int, seeds: tuple[int, ...],
             targets: tuple[float, ...] = (), max_envs: int = 50, max_episode_steps: int = 0,
             device: str = "cpu", recording=None, runtime: str = "torch") -> dict:
    """Mean/std of returns and normalised scores per target over `episodes` x `seeds` episodes; a
    `recording` (dema.evaluation.video.Recording) gets the videos of the episodes it asks for;
    runtime "onnx": the agents act through ONNX Runtime on the policy exported (dema.export)."""
    targets = tuple(targets) or spec.return_targets
    check_runtime(runtime, spec, device, model_config.recurrent)
    limit = cut_limit(spec, max_episode_steps)
    was_training = policy.training
    policy.eval()
    try:
        if runtime == "onnx":
            from dema.evaluation.onnx_runtime import exported_agents

            onnx_agent = exported_agents(policy, model_config, stats)
        per_target = []
        for target in targets:
            returns, lengths, per_seed, cut = [], [], [], 0
            act_seconds, act_calls = 0.0, 0
            for seed in seeds:
                recorder = recording.recorder(target, seed) if recording is not None else None
                factory = onnx_agent if runtime == "onnx" else (
                    lambda n: make_agent(policy, stats, spec, model_config, n, device))
                result = run_episodes(factory, spec, episodes, seed * 10_000, target, max_envs, max_episode_steps,
                                      recorder)
                returns += result.returns
                lengths += result.lengths
                cut += sum(result.truncated) if limit else 0
                act_seconds += result.act_seconds
                act_calls += result.act_calls
                per_seed.append({"seed": seed, **_summary(result.returns, spec)})
            per_target.append({"target": target, **_summary(returns, spec), "episodes_cut": cut,
                               "per_seed": per_seed, "returns": returns, "lengths": lengths,
                               "act_ms_per_call": 1000.0 * act_seconds / max(act_calls, 1)})
    finally:
        policy.train(was_training)
    headline_keys = ("return_mean", "return_std", "normalized_mean", "normalized_std", "episodes", "episodes_cut")
    headline = {k: per_target[0][k] for k in headline_keys}
    return {**headline, "cut_at_steps": limit or None, "targets": list(targets), "seeds": list(seeds),
            "episodes_per_seed": episodes, "per_target": per_target, "runtime": runtime}


RUNTIMES = ("torch", "onnx")


def check_runtime(runtime: str, spec: EnvSpec, device: str, recurrent: bool) -> None:
    """The runtime `dema eval` acts through: PyTorch, or ONNX Runtime on the CPU (on Atari's frames,
    RNN-like DeMa only: dema.export.graphs)."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    if runtime == "onnx" and spec.atari and not recurrent:
        raise ConfigError(f"--runtime onnx: on {spec.gym_id}'s frames dema export covers RNN-like DeMa (dema-rnn) only: an "
                          "exported window would re-read its K frames through the CNN at every decision; use "
                          "--runtime torch")
    if runtime == "onnx" and str(device) != "cpu":
        raise ConfigError(f"--runtime onnx acts through ONNX Runtime on the CPU; drop --device {device}")


def cut_limit(spec: EnvSpec, max_episode_steps: int) -> int:
    """The episode limit that cuts episodes short of the environment's own (0: none). Episodes it ends
    are counted next to the score (`episodes_cut`): their returns are not the whole game's, which
    matters most on Atari, where a cut game scores a fraction of a full one."""
    return max_episode_steps if 0 < max_episode_steps < spec.max_episode_steps else 0


def cut_note(cut: int | None, episodes: int, limit: int | None) -> str:
    """'; 3 of 10 cut at 500 steps (max_episode_steps), not whole episodes' when episodes were cut, else ''
    (eval.json of an older dema has no count: nothing to say)."""
    if not cut:
        return ""
    return f"; {cut} of {episodes} cut at {limit} steps (max_episode_steps), not whole episodes"


def check_simulator(spec: EnvSpec) -> None:
    """Open (and close) one environment of the kind `evaluate` plays in, so that a missing simulator
    (ale-py for Atari, gymnasium-robotics for maze2d, MuJoCo) is a ConfigError before training
    starts rather than a failure at the first evaluation."""
    try:
        make_vector_env(spec, 1).close()
    except ConfigError:
        raise
    except Exception as exc:  # gymnasium's DependencyNotInstalled, NameNotFound, ImportError, ...
        extra = "atari" if spec.atari else "maze" if spec.name.startswith("maze2d") else "test"
        raise ConfigError(f"evaluation needs the simulator of {spec.gym_id}, which does not start here "
                          f"({type(exc).__name__}: {exc}); install it (pip install -e \".[{extra}]\") or "
                          "train without evaluations (--schedule.eval-every 0 --no-eval.at-end)") from exc


def _summary(returns: list[float], spec: EnvSpec) -> dict:
    raw = np.asarray(returns, dtype=np.float64)
    norm = np.array([spec.normalize(r) for r in raw])
    return {"return_mean": float(raw.mean()), "return_std": float(raw.std()),
            "normalized_mean": float(norm.mean()), "normalized_std": float(norm.std()), "episodes": len(raw)}


# ----------------------------------------------------------------------------- trained runs


def load_run(run_dir: Path) -> LoadedRun:
    return RunDir(run_dir).load()


def load_policy(run: LoadedRun, weights: Path, device: str = "cpu"):
    """The policy with verified weights (RunDir.load_weights: loads, checksum, finite values)."""
    from dema.models import build_policy

    weights = Path(weights)
    tensors = RunDir(run.path).load_weights(weights, device)
    state_dim = run.spec.state_shape if run.spec.atari else run.state_dim  # Atari: (4, 84, 84) frames
    policy = build_policy(run.config.model, state_dim=state_dim, act_dim=run.act_dim, discrete=run.spec.discrete)
    try:
        policy.load_state_dict(tensors)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise DemaError(f"{weights} does not fit the model in {run.path / 'config.json'} ({first}); was it copied "
                        "from another run?") from None
    return policy.to(device)


def evaluate_run(run_dir: Path, checkpoints: tuple[str, ...] = ("final", "best"), episodes: int | None = None,
                 seeds: tuple[int, ...] | None = None, targets: tuple[float, ...] | None = None,
                 max_episode_steps: int | None = None, device: str = "cpu", video=None,
                 video_folder: Path | None = None, runtime: str = "torch") -> dict:
    """Score the run's checkpoints; returns the eval.json content (final checkpoint at top level).

    Holds the run directory's lock while it reads (dema.run.lock); refuses non-finite targets, a
    negative episode limit and damaged weights, and a result that is not a number.

    `video` (a dema.evaluation.video.VideoRequest) records episodes of the final checkpoint; the files
    land in `video_folder` (default: the run's videos/) once every checkpoint is scored, and are
    listed under the report's "videos"."""
    run_dir = Path(run_dir)
    with RunDir(run_dir).lock():
        return _evaluate_run(run_dir, checkpoints, episodes, seeds, targets, max_episode_steps, device, video,
                             video_folder, runtime)


def _evaluate_run(run_dir: Path, checkpoints, episodes, seeds, targets, max_episode_steps, device, video=None,
                  video_folder=None, runtime: str = "torch") -> dict:
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
    check_choices(choices["episodes"], choices["targets"], choices["max_episode_steps"], choices["seeds"])
    run_files = RunDir(run_dir)
    if not video:
        return _score_checkpoints(run, run_files, checkpoints, choices, device, runtime=runtime)
    request = _video_request(video, choices, run.spec)
    with Recording(request) as recording:
        report = _score_checkpoints(run, run_files, checkpoints, choices, device, recording, runtime)
        report["videos"] = recording.place(video_folder or run_files.videos, relative_to=run_dir)
    return report


def _video_request(video, choices: dict, spec: EnvSpec):
    """`video` with its episodes resolved, checked before any episode plays: its format's writer
    installed and, for MuJoCo, an off-screen OpenGL backend that renders."""
    from dema.evaluation.video import check_format

    video = video.resolved(choices["targets"][0], choices["seeds"], choices["episodes"])
    check_format(video.fmt)
    if not spec.atari:
        from dema.evaluation.rendering import offscreen_backend

        offscreen_backend()
    return video


def _score_checkpoints(run: LoadedRun, run_files: RunDir, checkpoints, choices: dict, device, recording=None,
                       runtime: str = "torch") -> dict:
    ev = run.config.eval
    results, params = {}, None
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
                                    choices["max_episode_steps"], device, recording if name == "final" else None,
                                    runtime)}
    if "final" not in results:
        raise DemaError(f"{run_files.path}: no final checkpoint (model.safetensors) to evaluate")
    for name, result in results.items():
        if not np.isfinite([result["return_mean"], result["normalized_mean"]]).all():
            raise DemaError(f"{run_files.checkpoint(name)} scores {result['normalized_mean']} (not a number): the "
                            "policy or the simulator produced NaN; eval.json is not written")
    report = dict(results["final"])
    report["best_checkpoint"] = results.get("best")
    report["best_during_training"] = run_files.best_evaluation()
    report["training"] = training_time(run_files)
    report.update({
        "run_dir": str(run_files.path), "dataset": run.config.data.dataset, "model": run.config.model_name, "params": params,
        "protocol": run.config.protocol, "train_seed": run.config.seed, "updates": run.config.schedule.updates,
        "env": run.spec.gym_id, "max_episode_steps": choices["max_episode_steps"] or run.spec.max_episode_steps,
        "delayed": run.stats.delayed, "reward_scale": run.stats.reward_scale, "versions": versions(),
        "reference_scores": {"min": run.spec.ref_min_score, "max": run.spec.ref_max_score, "source": run.references},
    })
    return report


def check_choices(episodes: int, targets, max_episode_steps: int, seeds=()) -> None:
    """Evaluation options a user gives: at least one episode, finite targets, a limit >= 0, seeds >= 0."""
    from dema.run.config import check_targets

    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    if any(seed < 0 for seed in seeds):
        raise ConfigError(f"--seeds must be >= 0 (the simulator's seeds), got {list(seeds)}")
    check_targets(targets)
    if max_episode_steps < 0:
        raise ConfigError(f"--max-episode-steps must be >= 0 (0: the environment's own limit), got {max_episode_steps}")


def write_eval(run_dir: Path, report: dict) -> Path:
    """eval.json in the run directory (replaced atomically)."""
    return RunDir(run_dir).write_eval(report)


def versions() -> dict:
    """Package versions and the machine, recorded next to every score."""
    return {**provenance.versions(), **provenance.machine()}
