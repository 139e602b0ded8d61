"""The one training loop, for every model of the trunk.

    for step in range(start, updates):
        batch = stream.next()                 # K-step windows, or whole trajectories (RNN-like)
        loss = policy.loss(batch)             # masked MSE on the actions
        stop if loss is not finite
        backward; clip the grad norm; stop if the norm is not finite
        AdamW step; linear warm-up step
        every log_every:        one line, a metrics.csv row (TensorBoard if asked)
        every eval_every:       rollouts in the simulator -> evals.csv, best.safetensors
        every checkpoint_every: model.safetensors + train_state.pt

Transformer-like models (DeMa, BL3D, DeMa-post, DT, DC, BC) train on K-step windows sampled as
Decision Transformer does. RNN-like DeMa (`model.recurrent`) trains on whole trajectories, epoch
after epoch, with `optim.updates_per_batch` updates on each batch as in the paper.

Run directory (`runs/<dataset>_<model>_<protocol>_s<seed>/`):
    config.json          the resolved TrainConfig
    normalization.json   state mean/std, reward scale, delayed, env, sizes: enough to act
    model.safetensors    weights at the last checkpoint (metadata: step)
    best.safetensors     weights at the best evaluation during training
    train_state.pt       the full resume state: weights, optimiser, scheduler, RNG states (torch,
                         the sampler's numpy generator, the batch stream), step, best, and the
                         time spent (train_seconds: updates only; wall_seconds: with evaluations)
    metrics.csv          one row per log interval; evals.csv one row per evaluation
    eval.json            written by `dema eval` (and at the end of training)

Resume is exact: a run killed at any point and resumed (`dema train --resume RUN_DIR`) restarts
from the last train_state.pt and, on the CPU, ends with bit-identical weights to an uninterrupted
run (tested). Rows of metrics.csv/evals.csv past the resumed step are dropped, since they will be
recomputed. Evaluations run inside `torch.random.fork_rng`, so they never shift the training RNG.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from dema.data.batch import Batch
from dema.envs import EnvSpec, env_spec
from dema.errors import ConfigError, DataError, DemaError
from dema.evaluation.agent import NormStats
from dema.train.config import TrainConfig, dataset_name

METRIC_FIELDS = ["step", "loss", "grad_norm", "lr", "ms_per_step", "train_seconds"]
EVAL_FIELDS = ["step", "target", "episodes", "return_mean", "return_std", "normalized_mean", "normalized_std"]


class TrainingDiverged(DemaError):
    """The loss or the gradients became NaN/inf."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    train_seconds: float  # wall time in training updates only (no evaluation, no checkpoints)
    ms_per_step: float
    best: dict | None  # {"step", "normalized_mean"} of the best evaluation during training
    params: int


# ----------------------------------------------------------------------------- batch streams


class WindowStream:
    """K-step windows from `TrajectoryDataset.sample`, each batch used `updates_per_batch` times."""

    def __init__(self, data, batch_size: int, updates_per_batch: int):
        self.data, self.batch_size, self.upb = data, batch_size, updates_per_batch
        self.batch: Batch | None = None
        self.uses_left = 0

    def next(self) -> Batch:
        if self.uses_left == 0:
            self.batch, self.uses_left = self.data.sample(self.batch_size), self.upb
        self.uses_left -= 1
        return self.batch

    def state_dict(self) -> dict:
        return {"rng": self.data.rng_state(), "uses_left": self.uses_left, "batch": _batch_dict(self.batch, self.uses_left)}

    def load_state_dict(self, state: dict) -> None:
        self.data.set_rng_state(state["rng"])
        self.uses_left, self.batch = state["uses_left"], _batch_from(state["batch"])


class TrajectoryStream:
    """Whole trajectories (RNN-like DeMa): epochs of `trajectory_batches`, several updates each.

    Resume: an epoch's order is drawn from the sampler's generator when the epoch starts, so the
    state is (generator state at the epoch's start, batches consumed); restoring replays the draw.
    """

    def __init__(self, data, batch_size: int, updates_per_batch: int):
        self.data, self.batch_size, self.upb = data, batch_size, updates_per_batch
        self.batch: Batch | None = None
        self.uses_left = 0
        self.epoch_rng: dict | None = None
        self.consumed = 0
        self._iter = None

    def _start_epoch(self) -> None:
        self.epoch_rng, self.consumed = self.data.rng_state(), 0
        self._iter = self.data.trajectory_batches(self.batch_size)

    def next(self) -> Batch:
        if self.uses_left == 0:
            if self._iter is None:
                self._start_epoch()
            batch = next(self._iter, None)
            if batch is None:  # epoch over: a new order
                self._start_epoch()
                batch = next(self._iter)
            self.batch, self.uses_left, self.consumed = batch, self.upb, self.consumed + 1
        self.uses_left -= 1
        return self.batch

    def state_dict(self) -> dict:
        return {"epoch_rng": self.epoch_rng, "consumed": self.consumed, "rng": self.data.rng_state(),
                "uses_left": self.uses_left, "batch": _batch_dict(self.batch, self.uses_left)}

    def load_state_dict(self, state: dict) -> None:
        self.uses_left, self.batch = state["uses_left"], _batch_from(state["batch"])
        if state["epoch_rng"] is None:
            self.data.set_rng_state(state["rng"])
            return
        self.data.set_rng_state(state["epoch_rng"])
        self._start_epoch()
        for _ in range(state["consumed"]):  # replay the epoch's draws up to where it stopped
            next(self._iter)
        self.consumed = state["consumed"]


def _batch_dict(batch: Batch | None, uses_left: int) -> dict | None:
    return {f.name: getattr(batch, f.name) for f in fields(Batch)} if batch is not None and uses_left else None


def _batch_from(data: dict | None) -> Batch | None:
    return Batch(**data) if data else None


# ----------------------------------------------------------------------------- the run directory


def prepare_run_dir(config: TrainConfig) -> Path:
    """Create the run directory; an existing one is an error unless `overwrite` is set."""
    run_dir = config.run_dir()
    if run_dir.exists() and any(run_dir.iterdir()):
        if not config.overwrite:
            raise ConfigError(
                f"run directory {run_dir} exists; resume it with `dema train --resume {run_dir}`, "
                "pass --overwrite True to replace it, or choose another --run-name"
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / "config.json")
    return run_dir


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file and rename, so a kill never leaves half a checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_weights(policy, path: Path, step: int) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().clone() for k, v in policy.state_dict().items()}
    _atomic_write(path, lambda p: save_file(tensors, str(p), metadata={"step": str(step)}))


def _truncate_csv(path: Path, fieldnames: list[str], last_step: int) -> None:
    """Keep the header and the rows up to `last_step` (rows after it are recomputed on resume)."""
    rows = []
    if path.is_file():
        with path.open() as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= last_step]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)


def _append_csv(path: Path, fieldnames: list[str], row: dict) -> None:
    with path.open("a", newline="") as f:
        csv.DictWriter(f, fieldnames=fieldnames).writerow(row)


def resolve_env(dataset, config: TrainConfig) -> EnvSpec:
    """The simulator of the dataset: from its recorded env id, else from its name."""
    for name in (dataset.env_name, dataset_name(config.data.dataset)):
        if name:
            try:
                return env_spec(name)
            except KeyError:
                continue
    raise DataError(f"cannot tell which environment {config.data.dataset!r} comes from; "
                    "name the file after it (hopper-..., halfcheetah-..., walker2d-...)")


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("--tensorboard True needs the tensorboard package: "
                          'pip install tensorboard (or the extra: pip install -e ".[tb]")') from None
    return SummaryWriter(str(run_dir / "tb"))


# ----------------------------------------------------------------------------- training


def train(config: TrainConfig, resume: bool = False, stop_at: int | None = None, log=print) -> TrainResult:
    """Train (or resume) the run of `config`; `stop_at` ends early after that step (for tests)."""
    from tqdm import tqdm

    from dema.data.load import load_dataset
    from dema.data.trajectories import TrajectoryDataset
    from dema.models import build_policy, count_parameters

    config.validate()
    if config.threads:
        torch.set_num_threads(config.threads)
    run_dir = config.run_dir()
    if resume and not (run_dir / "train_state.pt").is_file():
        raise DemaError(f"{run_dir} has no train_state.pt to resume from (no checkpoint was written yet)")
    if not resume:
        run_dir = prepare_run_dir(config)
    log(f"run directory: {run_dir}")
    log("config: " + json.dumps(config.to_dict(), indent=2))

    dataset = load_dataset(config.data.dataset)
    if dataset.discrete:
        raise DataError(f"{config.data.dataset}: discrete actions (Atari) are not supported by `dema train` yet")
    spec = resolve_env(dataset, config)
    data = TrajectoryDataset(dataset, config.model.context_len, config.data.reward_scale, config.data.delayed,
                             seed=config.seed)
    stats = NormStats(data.state_mean, data.state_std, config.data.reward_scale, config.data.delayed)
    norm = {**stats.to_dict(), "env": spec.name, "gym_id": spec.gym_id, "state_dim": data.state_dim,
            "act_dim": data.act_dim, "dataset": config.data.dataset, "dataset_source": dataset.source,
            "transitions": len(dataset), "episodes": len(data)}
    (run_dir / "normalization.json").write_text(json.dumps(norm, indent=2) + "\n")

    # Seed everything that is random in training: weights, dropout (torch), the sampler (numpy).
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    device = torch.device(config.device)
    policy = build_policy(config.model, state_dim=data.state_dim, act_dim=data.act_dim).to(device)
    params = count_parameters(policy)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay,
                                  betas=tuple(config.optim.betas))
    warmup = max(config.optim.warmup_steps, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / warmup, 1.0))
    stream_class = TrajectoryStream if config.model.recurrent else WindowStream
    stream = stream_class(data, config.optim.batch_size, config.optim.updates_per_batch)

    step, train_seconds, best, wall_before = 0, 0.0, None, 0.0
    if resume:
        # loaded on the CPU: RNG states must stay there; load_state_dict moves the rest to the device
        state = torch.load(run_dir / "train_state.pt", map_location="cpu", weights_only=True)
        policy.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        stream.load_state_dict(state["stream"])
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(_np_state_in(state["rng"]["numpy"]))
        random.setstate(_py_state_in(state["rng"]["python"]))
        if state["rng"].get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        step, train_seconds, best = state["step"], state["train_seconds"], state["best"]
        wall_before = state.get("wall_seconds", 0.0)
        log(f"resumed at step {step}")
    _truncate_csv(run_dir / "metrics.csv", METRIC_FIELDS, step)
    _truncate_csv(run_dir / "evals.csv", EVAL_FIELDS, step)
    writer = _tensorboard(run_dir) if config.tensorboard else None
    log(f"{config.model_name}: {params:,} parameters; {len(dataset):,} transitions in {len(data):,} episodes; "
        f"env {spec.gym_id}")

    session_start = time.perf_counter()

    def checkpoint() -> None:
        save_weights(policy, run_dir / "model.safetensors", step)
        wall_seconds = wall_before + time.perf_counter() - session_start  # updates + evaluations + checkpoints
        state = {"step": step, "train_seconds": train_seconds, "wall_seconds": wall_seconds, "best": best,
                 "model": policy.state_dict(),
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "stream": stream.state_dict(), "rng": {"torch": torch.get_rng_state(),
                                                        "numpy": _np_state_out(np.random.get_state()),
                                                        "python": _py_state_out(random.getstate()),
                                                        "cuda": torch.cuda.get_rng_state_all()
                                                        if torch.cuda.is_available() else None}}
        _atomic_write(run_dir / "train_state.pt", lambda p: torch.save(state, p))

    def evaluate_now() -> dict:
        from dema.evaluation.evaluate import evaluate

        target = (config.eval.targets or spec.return_targets)[0]
        with torch.random.fork_rng(devices=[]):
            result = evaluate(policy, config.model, stats, spec, config.eval.train_episodes, config.eval.seeds,
                              (target,), config.eval.max_envs, config.eval.max_episode_steps, config.device)
        row = {"step": step, "target": target, **{k: result[k] for k in EVAL_FIELDS[2:]}}
        _append_csv(run_dir / "evals.csv", EVAL_FIELDS, row)
        return row

    policy.train()
    end = config.schedule.updates if stop_at is None else min(stop_at, config.schedule.updates)
    bar = tqdm(total=config.schedule.updates, initial=step, disable=not config.progress, file=sys.stderr,
               dynamic_ncols=True, leave=False)
    interval_loss, interval_grad, interval_seconds, interval_steps = 0.0, 0.0, 0.0, 0
    last_eval = ""
    try:
        while step < end:
            start = time.perf_counter()
            batch = stream.next().to(device)
            loss = policy.loss(batch)
            if not torch.isfinite(loss):
                raise TrainingDiverged(_diverged("loss", loss.item(), step + 1, run_dir))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), config.optim.grad_clip or math.inf)
            if not torch.isfinite(grad_norm):
                raise TrainingDiverged(_diverged("gradient norm", grad_norm.item(), step + 1, run_dir))
            optimizer.step()
            scheduler.step()
            step += 1
            seconds = time.perf_counter() - start
            train_seconds += seconds
            interval_loss += loss.item()
            interval_grad += grad_norm.item()
            interval_seconds += seconds
            interval_steps += 1
            bar.update(1)

            if step % config.schedule.log_every == 0 or step == end:
                row = {"step": step, "loss": interval_loss / interval_steps, "grad_norm": interval_grad / interval_steps,
                       "lr": scheduler.get_last_lr()[0], "ms_per_step": 1000 * interval_seconds / interval_steps,
                       "train_seconds": train_seconds}
                _append_csv(run_dir / "metrics.csv", METRIC_FIELDS, row)
                if writer:
                    for key in ("loss", "grad_norm", "lr", "ms_per_step"):
                        writer.add_scalar(f"train/{key}", row[key], step)
                line = (f"step {step:>7}/{config.schedule.updates} | loss {row['loss']:.4f} | grad {row['grad_norm']:.3f}"
                        f" | lr {row['lr']:.2e} | {row['ms_per_step']:.1f} ms/step{last_eval}")
                (bar.write if config.progress else log)(line)
                interval_loss, interval_grad, interval_seconds, interval_steps = 0.0, 0.0, 0.0, 0

            eval_due = config.schedule.eval_every and (step % config.schedule.eval_every == 0
                                                       or step == config.schedule.updates)
            if eval_due:
                row = evaluate_now()
                if best is None or row["normalized_mean"] > best["normalized_mean"]:
                    best = {"step": step, "normalized_mean": row["normalized_mean"], "return_mean": row["return_mean"]}
                    save_weights(policy, run_dir / "best.safetensors", step)
                if writer:
                    writer.add_scalar("eval/normalized_mean", row["normalized_mean"], step)
                last_eval = f" | eval {row['normalized_mean']:.1f} (best {best['normalized_mean']:.1f} @ {best['step']})"
                (bar.write if config.progress else log)(
                    f"eval at step {step}: return {row['return_mean']:.1f} +- {row['return_std']:.1f}, "
                    f"normalised {row['normalized_mean']:.1f} +- {row['normalized_std']:.1f} "
                    f"({row['episodes']} episodes, target {row['target']:g})")

            if step % config.schedule.checkpoint_every == 0 or step == end:
                checkpoint()
    finally:
        bar.close()
        if writer:
            writer.close()
    ms = 1000 * train_seconds / max(step, 1)
    log(f"trained {step} updates in {train_seconds:.0f} s of updates ({ms:.1f} ms/step); run {run_dir}")
    return TrainResult(run_dir, step, train_seconds, ms, best, params)


def _diverged(what: str, value: float, step: int, run_dir: Path) -> str:
    state = run_dir / "train_state.pt"
    if state.is_file():
        last = torch.load(state, weights_only=True, map_location="cpu")["step"]
        kept = f"the last good checkpoint (step {last}) is kept in {run_dir}"
    else:
        kept = "no checkpoint had been written yet"
    return (f"training stopped: the {what} is {value} at update {step}; {kept}. "
            "Try a lower --optim.lr or a smaller --optim.grad-clip, then resume or start again.")


# numpy's and Python's RNG states as plain containers torch.load(weights_only=True) accepts.


def _np_state_out(state: tuple) -> dict:
    name, keys, pos, has_gauss, cached = state
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "has_gauss": has_gauss,
            "cached": cached}


def _np_state_in(state: dict) -> tuple:
    return (state["name"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"], state["cached"])


def _py_state_out(state: tuple) -> dict:
    version, internal, gauss = state
    return {"version": version, "internal": list(internal), "gauss": gauss}


def _py_state_in(state: dict) -> tuple:
    return (state["version"], tuple(state["internal"]), state["gauss"])
