"""Setting a training run up, and its checkpoint: everything `train()` needs before the first update.

`start(config, resume)` validates the config, loads the dataset, builds the policy, optimiser,
warm-up schedule and batch stream, and (on resume) restores them from train_state.pt, which holds
the weights, optimiser, scheduler, batch stream, every RNG state (torch, numpy, Python, CUDA),
the step, the best evaluation and the time spent. `Session.checkpoint()` writes it atomically.
Resume is exact: on the CPU a killed and resumed run ends with bit-identical weights (tested).
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from dema.envs import EnvSpec, dataset_name, env_spec
from dema.errors import ConfigError, DataError, DemaError
from dema.files import atomic_write
from dema.run import NormStats, RunDir, TrainConfig


@dataclass
class Session:
    """A run being trained: its parts and its progress."""

    config: TrainConfig
    run: RunDir
    spec: EnvSpec
    stats: NormStats
    data: object  # TrajectoryDataset
    policy: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    stream: object  # WindowStream or TrajectoryStream
    params: int
    step: int = 0
    train_seconds: float = 0.0  # wall time in updates only (no evaluation, no checkpoints)
    wall_before: float = 0.0  # wall time of earlier sessions of this run
    best: dict | None = None  # {"step", "normalized_mean", "return_mean"} of the best evaluation
    started: float = field(default_factory=time.perf_counter)

    def checkpoint(self) -> None:
        """model.safetensors and train_state.pt, each replaced atomically."""
        self.run.save_weights(self.policy, self.run.weights, self.step)
        state = {"step": self.step, "train_seconds": self.train_seconds,
                 "wall_seconds": self.wall_before + time.perf_counter() - self.started, "best": self.best,
                 "model": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "stream": self.stream.state_dict(),
                 "rng": _rng_states()}
        atomic_write(self.run.train_state, lambda p: torch.save(state, p))

    def restore(self) -> None:
        # loaded on the CPU: RNG states must stay there; load_state_dict moves the rest to the device
        state = torch.load(self.run.train_state, map_location="cpu", weights_only=True)
        self.policy.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.stream.load_state_dict(state["stream"])
        _set_rng_states(state["rng"])
        self.step, self.train_seconds, self.best = state["step"], state["train_seconds"], state["best"]
        self.wall_before = state.get("wall_seconds", 0.0)


def start(config: TrainConfig, resume: bool, log=print) -> Session:
    """Validate, load the data, build the parts, and create or resume the run directory."""
    from dema.data.load import load_dataset
    from dema.data.streams import TrajectoryStream, WindowStream
    from dema.data.trajectories import TrajectoryDataset
    from dema.models import build_policy, count_parameters

    config.validate()
    if config.threads:
        torch.set_num_threads(config.threads)
    run = RunDir(config.run_dir())
    if resume and not run.train_state.is_file():
        raise DemaError(f"{run.path} has no train_state.pt to resume from (no checkpoint was written yet)")
    if not resume:
        prepare_run_dir(config, run)
    log(f"run directory: {run.path}")
    log("config: " + json.dumps(config.to_dict(), indent=2))

    dataset = load_dataset(config.data.dataset)
    if dataset.discrete:
        raise DataError(f"{config.data.dataset}: discrete actions (Atari) are not supported by `dema train` yet")
    spec = resolve_env(dataset, config)
    data = TrajectoryDataset(dataset, config.model.context_len, config.data.reward_scale, config.data.delayed,
                             seed=config.seed)
    stats = NormStats(data.state_mean, data.state_std, config.data.reward_scale, config.data.delayed)
    run.write_normalization({**stats.to_dict(), "env": spec.name, "gym_id": spec.gym_id,
                             "state_dim": data.state_dim, "act_dim": data.act_dim, "dataset": config.data.dataset,
                             "dataset_source": dataset.source, "transitions": len(dataset), "episodes": len(data)})

    # Seed everything that is random in training: weights, dropout (torch), the sampler (numpy).
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    policy = build_policy(config.model, state_dim=data.state_dim, act_dim=data.act_dim).to(config.device)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay,
                                  betas=tuple(config.optim.betas))
    warmup = max(config.optim.warmup_steps, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / warmup, 1.0))
    stream_class = TrajectoryStream if config.model.recurrent else WindowStream
    stream = stream_class(data, config.optim.batch_size, config.optim.updates_per_batch)
    session = Session(config, run, spec, stats, data, policy, optimizer, scheduler, stream, count_parameters(policy))
    if resume:
        session.restore()
        log(f"resumed at step {session.step}")
    run.add_session(session.step)
    log(f"{config.model_name}: {session.params:,} parameters; {len(dataset):,} transitions in {len(data):,} "
        f"episodes; env {spec.gym_id}")
    return session


def prepare_run_dir(config: TrainConfig, run: RunDir) -> None:
    """Create the run directory; an existing one is an error unless `overwrite` is set."""
    if run.path.exists() and any(run.path.iterdir()):
        if not config.overwrite:
            raise ConfigError(
                f"run directory {run.path} exists; resume it with `dema train --resume {run.path}`, "
                "pass --overwrite True to replace it, or choose another --run-name"
            )
        shutil.rmtree(run.path)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_config(config)


def resolve_env(dataset, config: TrainConfig) -> EnvSpec:
    """The simulator of the dataset: from its recorded env id, else from its name."""
    for name in (dataset.env_name, dataset.metadata.get("env_name"), dataset_name(config.data.dataset)):
        if name:
            try:
                return env_spec(name)
            except ConfigError:
                continue
    raise DataError(f"cannot tell which environment {config.data.dataset!r} comes from; "
                    "name the file after it (hopper-..., halfcheetah-..., walker2d-..., maze2d-umaze-...)")


def last_checkpoint_note(run: RunDir) -> str:
    """Where a stopped run can be picked up again, for error messages."""
    if run.train_state.is_file():
        last = torch.load(run.train_state, weights_only=True, map_location="cpu")["step"]
        return f"the last good checkpoint (step {last}) is kept in {run.path}"
    return "no checkpoint had been written yet"


# numpy's and Python's RNG states as plain containers torch.load(weights_only=True) accepts.


def _rng_states() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                      "has_gauss": has_gauss, "cached": cached},
            "python": {"version": version, "internal": list(internal), "gauss": gauss},
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_states(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    n = rng["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = rng["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
