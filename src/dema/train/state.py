"""Setting a training run up, and its checkpoint: everything `train()` needs before the first update.

`start(config, resume)` validates the config, loads the dataset, builds the policy, optimiser,
warm-up schedule and batch stream, and (on resume) restores them from train_state.pt, which holds
the weights, optimiser, scheduler, batch stream, every RNG state (torch, numpy, Python, CUDA),
the step, the best evaluation and the time spent. `Session.checkpoint()` writes it atomically and
keeps the one before as train_state.prev.pt; `restore` verifies what it reads and falls back to
that previous checkpoint when the latest is damaged. Resume is exact: on the CPU a killed and
resumed run ends with bit-identical weights (tested).

What a start checks before it changes anything on disk (docs/GUARANTEES.md): the config, the
device, the dataset (it loads, fits its environment, its values are learnable) and, on resume, that
it is the dataset the run was started on and that train_state.pt is this run's. Only then is an
existing run directory replaced (`--overwrite`) or written to; the run directory is locked
(dema.run.lock) from then until training ends.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dema.data.episodes import returns_summary
from dema.envs import EnvSpec, dataset_name, env_spec
from dema.evaluation.evaluate import check_simulator
from dema.errors import ConfigError, DataError, DemaError
from dema.files import atomic_write, write_failed
from dema.run import NormStats, RunDir, TrainConfig
from dema.run.config import check_device
from dema.run.lock import RunLock

# Returns-to-go (after dividing by data.reward_scale) beyond this make the return embedding's inputs
# so large that training diverges; MuJoCo's are below 15, Atari's (unscaled, as DT's Atari code) reach
# a few 1e4 (Qbert), so the bound is far above anything an environment here produces.
MAX_SCALED_RETURN = 1e6
# Continuous actions beyond this are outside the environments' [-1, 1] by more than noise: the
# policies' tanh head cannot produce them, so training would chase unreachable targets.
MAX_ACTION = 1.5
STATE_KEYS = ("step", "train_seconds", "best", "model", "optimizer", "scheduler", "stream", "rng")
# The environment variables that choose the kernels an update runs (dema.scan, dema.models.mamba,
# dema.models.fused_step): each gives the same results up to float rounding, not the same bits.
COMPUTE_VARIABLES = ("DEMA_SCAN", "DEMA_SSM", "DEMA_FUSED_STEP")


def empty_interval() -> dict:
    """The sums of a log interval (dema.train.metrics): kept in the checkpoint, so that a resume from a
    checkpoint inside an interval writes the same metrics.csv row as an uninterrupted run."""
    return {"loss": 0.0, "grad_norm": 0.0, "seconds": 0.0, "steps": 0}


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
    run_id: str = ""  # identity.json's; written into every checkpoint
    lock: RunLock | None = None  # held from the start until `close`
    interval: dict = field(default_factory=empty_interval)  # the current log interval's sums

    def checkpoint(self) -> None:
        """model.safetensors and train_state.pt, each replaced atomically; the train_state.pt being
        replaced is kept as train_state.prev.pt. A failed write (a full disk) is a DemaError that
        says which checkpoint is still there."""
        self.run.save_weights(self.policy, self.run.weights, self.step, self.run_id)
        state = {"step": self.step, "train_seconds": self.train_seconds,
                 "wall_seconds": self.wall_before + time.perf_counter() - self.started, "best": self.best,
                 "model": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "stream": self.stream.state_dict(),
                 "rng": _rng_states(), "run_id": self.run_id, "interval": dict(self.interval),
                 "compute": compute_path(self.config)}
        try:
            atomic_write(self.run.train_state, lambda p: torch.save(state, p),
                         keep_previous=self.run.previous_train_state)
        except Exception as exc:  # torch reports a full disk as a RuntimeError from its zip writer
            raise write_failed(self.run.train_state, exc, f"Training stopped at update {self.step}; "
                               f"{last_checkpoint_note(self.run)}.") from None

    def restore(self, log=print) -> None:
        """The state of the last good checkpoint: train_state.pt, else (damaged) train_state.prev.pt."""
        state, path = load_train_state(self.run, log)
        saved_id = state.get("run_id")
        if saved_id and self.run_id and saved_id != self.run_id:
            raise DemaError(f"{path} belongs to another run (run id {saved_id}; this run's, in identity.json, is "
                            f"{self.run_id}): it was copied from another run directory. Put that run's own "
                            "train_state.pt back, or start this run again with --overwrite True")
        try:
            self.policy.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.stream.load_state_dict(state["stream"])
            _set_rng_states(state["rng"])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
            first = str(exc).strip().splitlines()[0][:200]
            raise DemaError(f"{path} does not fit this run's model, optimiser or data ({first}); was it copied "
                            "from another run? Put the run's own checkpoint back, or start again with "
                            "--overwrite True") from None
        self.step, self.train_seconds, self.best = state["step"], state["train_seconds"], state["best"]
        self.wall_before = state.get("wall_seconds", 0.0)
        self.interval = {**empty_interval(), **state.get("interval", {})}  # older checkpoints: an empty interval
        _note_compute_change(state.get("compute"), compute_path(self.config), log)

    def close(self) -> None:
        """Release the run directory's lock (the end of training, however it ends)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def start(config: TrainConfig, resume: bool, log=print) -> Session:
    """Validate, load the data, build the parts, then create (or replace) or resume the run directory.

    Everything that can be checked is checked before the run directory is touched; the returned
    session holds the run directory's lock (release it with `Session.close`)."""
    from dema.atari.data import check_dataset, check_trajectory_batch, load_training_data
    from dema.data.streams import TrajectoryStream, WindowStream
    from dema.data.trajectories import TrajectoryDataset
    from dema.models import build_policy, count_parameters

    config.validate()
    check_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    run = RunDir(config.run_dir())
    lock = None
    if resume:
        if not (run.train_state.is_file() or run.previous_train_state.is_file()):
            raise DemaError(f"{run.path} has no train_state.pt to resume from: it stopped before its first "
                            "checkpoint, so there is nothing to keep. Start it again with the same `dema train` "
                            "command without --resume (it restarts from update 0)")
        lock = run.lock().acquire()  # before anything is read: another process may be writing it
    elif run.occupied() and not config.overwrite and not _restartable(run):
        raise _exists(run)
    elif run.occupied() and (why := run.foreign()):  # before the dataset is read, never after
        raise ConfigError(f"{run.path} is not a run directory of dema's: {why}; dema replaces only run "
                          "directories it made. Choose another --run-name or --runs-dir")
    restarting = not resume and not config.overwrite and run.occupied()
    try:
        # a DQN-replay game folder with data.max_transitions is sampled as DT does (dema.atari.data)
        dataset = load_training_data(config.data.dataset, config.data.max_transitions, config.seed)
        spec = resolve_env(dataset, config)
        check_dataset(dataset, spec)  # Atari: discrete actions of the game, 84x84 uint8 frames
        data = TrajectoryDataset(dataset, config.model.context_len, config.data.reward_scale, config.data.delayed,
                                 seed=config.seed, frame_stack=max(spec.frame_stack, 1))
        if config.model.recurrent:
            check_trajectory_batch(data, config.optim.batch_size, dataset.source or config.data.dataset)
        check_learnable(dataset, data, spec, config, log)
        # the run's lines only once its data loaded and passed its checks: a missing dataset is its
        # one error line, not the end of a config dump about a folder that is never made
        log(f"run directory: {run.path}")
        if restarting:
            log("note: this run stopped before its first checkpoint (nothing to keep); starting it again from update 0")
        log("config: " + json.dumps(config.to_dict(), indent=2))
        if config.eval.at_end or (config.schedule.eval_every and config.eval.train_episodes):
            check_simulator(spec)  # a missing ale-py is an error now, not after the first updates
        identity = dataset_identity(config.data.dataset, dataset, data, spec)
        run_id = _check_same_dataset(run, identity, log) if resume else uuid.uuid4().hex
        # frames: a scalar mean 0 and std 255 (TrajectoryDataset), kept as 1-element lists
        stats = NormStats(np.atleast_1d(data.state_mean), np.atleast_1d(data.state_std), config.data.reward_scale,
                          config.data.delayed)

        # Seed everything that is random in training: weights, dropout (torch), the sampler (numpy).
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        np.random.seed(config.seed)
        # frames: the CNN takes (frame_stack, 84, 84); discrete: cross-entropy on the game's action indices
        state_dim = spec.state_shape if spec.atari else data.state_dim
        policy = build_policy(config.model, state_dim=state_dim, act_dim=data.act_dim,
                              discrete=data.discrete).to(config.device)
        groups = parameter_groups(policy, config.optim.weight_decay, config.optim.decay_weights_only)
        optimizer = torch.optim.AdamW(groups, lr=config.optim.lr, betas=tuple(config.optim.betas))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_factor(config.optim.warmup_steps, config.optim.decay_steps, config.optim.min_lr_ratio))
        stream_class = TrajectoryStream if config.model.recurrent else WindowStream
        stream = stream_class(data, config.optim.batch_size, config.optim.updates_per_batch)
        session = Session(config, run, spec, stats, data, policy, optimizer, scheduler, stream,
                          count_parameters(policy), run_id=run_id)
        if resume:
            session.restore(log)
            _check_not_behind(config, session.step, run)
            log(f"resumed at step {session.step}")
        else:  # everything is checked: only now is an existing run directory replaced
            lock = prepare_run_dir(config, run)
            run.write_identity({"run_id": run_id, "created": _now(), "dataset": identity})
        run.write_normalization({**stats.to_dict(), "env": spec.name, "gym_id": spec.gym_id,
                                 "state_dim": data.state_dim, "act_dim": data.act_dim,
                                 "dataset": config.data.dataset, "dataset_source": dataset.source,
                                 "transitions": len(dataset), "episodes": len(data)})
        if resume:
            _repair_weights(session, log)
        run.add_session(session.step)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    session.lock = lock
    log(f"{config.model_name}: {session.params:,} parameters; {len(dataset):,} transitions in {len(data):,} "
        f"episodes; env {spec.gym_id}")
    return session


def prepare_run_dir(config: TrainConfig, run: RunDir) -> RunLock:
    """Create and lock the run directory; an existing one is an error unless `overwrite` is set, then
    its files are removed (under the lock, so never while another process works in it). Returns
    the held lock."""
    try:
        run.path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_failed(run.path, exc) from None
    lock = run.lock().acquire()
    try:
        if run.occupied():
            if not (config.overwrite or _restartable(run)):
                raise _exists(run)
            run.clear()
        run.write_config(config)
    except BaseException:
        lock.release()
        raise
    return lock


def _restartable(run: RunDir) -> bool:
    """A run of dema's that stopped before its first checkpoint (Ctrl-C, kill -9, a full disk, a bad
    setting) holds nothing worth keeping: the same command starts it again from update 0."""
    return not run.has_checkpoint() and run.foreign() is None


def _exists(run: RunDir) -> ConfigError:
    return ConfigError(f"run directory {run.path} exists; resume it with `dema train --resume {run.path}`, "
                       "pass --overwrite True to replace it, or choose another --run-name")


def lr_factor(warmup_steps: int, decay_steps: int = 0, min_ratio: float = 0.1):
    """The lr multiplier of update s: linear warm-up to 1 over warmup_steps, then constant, or with
    decay_steps DT's Atari schedule: a cosine from 1 at the end of the warm-up to 0 at update
    decay_steps, floored at min_ratio (so the floor is reached before decay_steps: at about 80% of
    it for min_ratio 0.1), then min_ratio."""
    warmup = max(warmup_steps, 1)

    def factor(step: int) -> float:
        if step + 1 < warmup or not decay_steps:
            return min((step + 1) / warmup, 1.0)
        progress = min(max((step + 1 - warmup) / max(decay_steps - warmup, 1), 0.0), 1.0)
        return max(min_ratio, 0.5 * (1.0 + math.cos(math.pi * progress)))

    return factor


def parameter_groups(policy: torch.nn.Module, weight_decay: float, weights_only: bool) -> list[dict]:
    """AdamW parameter groups: every parameter decayed, or (weights_only, as DT's Atari code) only
    the weights of Linear and convolution layers (not biases, norms, embeddings, Mamba's A and D)."""
    if not weights_only:
        return [{"params": list(policy.parameters()), "weight_decay": weight_decay}]
    decayed = {id(m.weight) for m in policy.modules()
               if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d))}
    params = list(policy.parameters())
    return [{"params": [p for p in params if id(p) in decayed], "weight_decay": weight_decay},
            {"params": [p for p in params if id(p) not in decayed], "weight_decay": 0.0}]


def check_learnable(dataset, data, spec: EnvSpec, config: TrainConfig, log=print) -> None:
    """What loading cannot know: the dataset against the environment training evaluates in, and
    values the model cannot learn from. A refusal names the value and the fix; a warning the
    consequence."""
    from dema.data.validate import check_against_env

    named = dataset.env_name and _known_env(dataset.env_name)
    check_against_env(dataset, spec, "" if named else "named by the dataset's name")
    src = dataset.source or config.data.dataset
    scaled = float(np.abs(data._rtg).max()) if len(data._rtg) else 0.0
    if not math.isfinite(scaled) or scaled > MAX_SCALED_RETURN:
        biggest = float(np.abs(dataset.rewards).max())
        raise DataError(
            f"{src}: returns-to-go reach {scaled:.3g} after dividing by data.reward_scale {config.data.reward_scale:g} "
            f"(rewards up to {biggest:.3g}); the return embedding cannot take values this large and training would "
            f"diverge. Fix: repair the rewards, or raise --data.reward-scale so that returns-to-go stay below "
            f"{MAX_SCALED_RETURN:g}")
    if not dataset.discrete:
        biggest = float(np.abs(dataset.actions).max())
        if biggest > MAX_ACTION:
            raise DataError(
                f"{src}: actions reach {biggest:.3g}, but {spec.gym_id} acts in [-1, 1] and the policy's tanh head "
                "cannot output more than 1: the model would chase targets it cannot reach. Fix: rescale the "
                "actions to the environment's [-1, 1] (or clip them)")
        outside = np.abs(dataset.actions) > 1.0 + 1e-3
        if outside.any():
            log(f"warning: {src}: {int(outside.any(axis=-1).sum())} of {len(dataset)} actions lie outside [-1, 1] "
                f"(up to {biggest:.3g}); the tanh head learns them as the nearest bound")
    check_state_statistics(dataset, data, src)
    model = config.model
    if model.position_embedding:
        if data.max_length > model.max_ep_len:
            raise ConfigError(
                f"model.max_ep_len is {model.max_ep_len} but {src} has episodes of {data.max_length} steps: "
                f"timesteps {model.max_ep_len}..{data.max_length - 1} would all share the last timestep embedding. "
                f"Fix: --model.max-ep-len {max(data.max_length, spec.max_episode_steps)}")
        horizon = config.eval.max_episode_steps or spec.max_episode_steps
        if horizon > model.max_ep_len:
            log(f"warning: evaluation episodes run up to {horizon} steps but model.max_ep_len is {model.max_ep_len}: "
                f"steps past {model.max_ep_len - 1} share one timestep embedding (--model.max-ep-len {horizon} "
                "avoids it)")


def check_state_statistics(dataset, data, src: str) -> None:
    """Observations near 1e20 are finite, so loading takes them, but their std overflows float32: the
    normalised states would all be 0 (or NaN) and the model would train without seeing them."""
    from dema.data.validate import overflow_problem

    if data.images:  # frames are scaled by a fixed 255
        return
    problem = overflow_problem(dataset.observations, data.state_mean, data.state_std)
    if problem:
        raise DataError(f"{src}: {problem}. Fix: rescale or repair the observations (the environments' own stay "
                        "within a few hundred), or drop the transitions that hold such values")


def _known_env(name: str) -> bool:
    try:
        env_spec(name)
        return True
    except ConfigError:
        return False


def dataset_identity(requested: str, dataset, data, spec) -> dict:
    """What identifies the data a run trains on: the name it was given, the file it was read from
    (and its size), a hash of the arrays (dema.data.dataset.OfflineDataset.content_sha256) and
    the transition and episode counts; plus its episode returns, raw and normalised, so that a
    report can put the scores next to the data's own (only the hash is compared on resume)."""
    source = Path(dataset.source) if dataset.source else None
    size = source.stat().st_size if source is not None and source.is_file() else None
    return {"dataset": requested, "path": str(source.resolve()) if source else None, "bytes": size,
            "format": dataset.format, "sha256": dataset.content_sha256(), "transitions": len(dataset),
            "episodes": len(data),
            "returns": returns_summary(dataset.episode_returns(), spec.normalize)}


def _check_same_dataset(run: RunDir, identity: dict, log) -> str:
    """On resume: the dataset must be the one the run started on (same content hash). Returns the
    run's id (a new one, recorded with the dataset, for a run made before dema recorded them)."""
    saved = run.read_identity()
    if saved is None or "dataset" not in saved:
        run_id = (saved or {}).get("run_id") or uuid.uuid4().hex
        log(f"note: {run.path} records no dataset identity (made by an older dema); recording the current "
            f"dataset's ({identity['transitions']} transitions, sha256 {identity['sha256'][:12]})")
        run.write_identity({"run_id": run_id, "created": _now(), "dataset": identity})
        return run_id
    before = saved["dataset"]
    if before.get("sha256") != identity["sha256"]:
        raise DataError(
            f"{identity['path'] or identity['dataset']}: not the data this run was trained on (now "
            f"{identity['transitions']} transitions in {identity['episodes']} episodes, sha256 "
            f"{identity['sha256'][:12]}; the run started on {before.get('transitions')} transitions in "
            f"{before.get('episodes')} episodes, sha256 {str(before.get('sha256'))[:12]}, from {before.get('path')}). "
            "Resuming would continue on other data and renormalise the states. Fix: put the original file back, "
            "or train a new run on this data (another --run-name, or --overwrite True)")
    return saved.get("run_id") or uuid.uuid4().hex


def _check_not_behind(config: TrainConfig, step: int, run: RunDir) -> None:
    """A resume never undoes updates: with fewer updates than already trained it would train nothing,
    yet record the smaller number in config.json next to weights of more updates."""
    if config.schedule.updates < step:
        raise ConfigError(f"--resume {run.path}: --schedule.updates {config.schedule.updates} is fewer than the "
                          f"{step} updates the run has already trained, and a resume never undoes updates. Fix: give "
                          f"--schedule.updates {step} or more, or train a new run (another --run-name) for fewer")


def compute_path(config: TrainConfig) -> dict:
    """What chooses the bits of an update besides the checkpoint: the kernels named by the environment
    variables, the device and its hardware, and (on the CPU) torch's threads."""
    from dema import machine

    device = torch.device(config.device)
    if device.type == "cuda":
        return {"device": str(device), "hardware": torch.cuda.get_device_name(device),
                **{name: os.environ.get(name, "") for name in COMPUTE_VARIABLES}}
    return {"device": str(device), "hardware": machine.cpu_model(), "threads": torch.get_num_threads(),
            **{name: os.environ.get(name, "") for name in COMPUTE_VARIABLES}}


def _note_compute_change(saved: dict | None, now: dict, log) -> None:
    """Resume is bit-exact only on the compute path that wrote the checkpoint; on another it is a
    correct continuation whose numbers differ by float rounding, and the user should know which."""
    if not saved:
        return  # a checkpoint of an older dema: its path is unknown
    changed = [f"{key} {saved[key] or 'unset'} -> {now[key] or 'unset'}" for key in now
               if key in saved and saved[key] != now[key]]
    if changed:
        log(f"note: this checkpoint was written under another compute path ({'; '.join(changed)}): the run "
            "continues correctly, but no longer bit-identical to an uninterrupted run")


def _repair_weights(session: Session, log) -> None:
    """On resume, model.safetensors must hold weights of the restored state's step or later; a
    damaged or missing one is rewritten from the restored state (`dema eval` points here)."""
    try:
        session.run.load_weights(session.run.weights)
        return
    except DemaError as exc:
        problem = str(exc).split(". ")[0]
    session.run.save_weights(session.policy, session.run.weights, session.step, session.run_id)
    log(f"note: {problem}; rewritten from the checkpoint at step {session.step}")


def load_train_state(run: RunDir, log=print) -> tuple[dict, Path]:
    """The resume state, verified (it loads, has every part, finite weights): train_state.pt, or the
    previous checkpoint train_state.prev.pt when the latest is damaged; a DemaError naming the files
    when neither is usable."""
    problems = []
    for path in (run.train_state, run.previous_train_state):
        if not path.is_file():
            problems.append(f"{path.name} is missing")
            continue
        try:
            state = _read_train_state(path)
        except DemaError as exc:
            problems.append(str(exc))
            continue
        if path != run.train_state:
            note = ""
            if run.train_state.is_file():  # set aside, so the next checkpoint does not keep it as the previous one
                damaged = run.path / "train_state.damaged.pt"
                run.train_state.replace(damaged)
                note = f" (moved to {damaged.name})"
            log(f"warning: {problems[0]}{note}; resuming from the previous checkpoint {path.name} "
                f"(step {state['step']})")
        return state, path
    raise DemaError(f"cannot resume {run.path}: {'; '.join(problems)}. The checkpoint files are damaged: start the "
                    "run again with --overwrite True (or restore them from a copy)")


def _read_train_state(path: Path) -> dict:
    try:
        # loaded on the CPU: RNG states must stay there; load_state_dict moves the rest to the device
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated: RuntimeError from the zip reader; garbage: UnpicklingError, EOFError
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise DemaError(f"{path} is damaged and cannot be read ({first})") from None
    if not isinstance(state, dict) or any(key not in state for key in STATE_KEYS):
        missing = [k for k in STATE_KEYS if not isinstance(state, dict) or k not in state]
        raise DemaError(f"{path} is not a dema training state (missing {', '.join(missing)})")
    bad = [k for k, v in state["model"].items() if torch.is_tensor(v) and v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise DemaError(f"{path} holds NaN or inf weights ({bad[0]}): it is damaged")
    return state


def resolve_env(dataset, config: TrainConfig) -> EnvSpec:
    """The simulator of the dataset: from its recorded env id, else from its name."""
    for name in (dataset.env_name, dataset.metadata.get("env_name"), dataset.metadata.get("game"),
                 dataset_name(config.data.dataset)):
        if name:
            try:
                return env_spec(name)
            except ConfigError:
                continue
    raise DataError(f"cannot tell which environment {config.data.dataset!r} comes from; "
                    "name the file after it (hopper-..., halfcheetah-..., walker2d-..., maze2d-umaze-...; an Atari "
                    "replay folder after its game: .../Pong)")


def last_checkpoint_note(run: RunDir) -> str:
    """Where a stopped run can be picked up again, for error messages."""
    for path in (run.train_state, run.previous_train_state):
        if path.is_file():
            try:
                last = _read_train_state(path)["step"]
            except DemaError:
                continue
            return f"the last good checkpoint (step {last}) is kept in {run.path}"
    return "no checkpoint had been written yet"


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


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
