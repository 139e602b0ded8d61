"""Setting a training run up: everything `train()` needs before the first update.

`start(config, resume)` validates the config, loads the dataset, builds the policy, the optimiser
(dema.train.optim) and the batch stream, and (on resume) restores them from the run's checkpoint
(dema.run.checkpoint: train_state.pt, verified, with its fall-back to train_state.prev.pt).
`Session.checkpoint()` writes the weights and train_state.pt. Resume is exact: on the CPU a killed
and resumed run ends with bit-identical weights (tested).

What a start checks before it changes anything on disk (docs/GUARANTEES.md): the config, the
device, the dataset (it loads, fits its environment, its values are learnable: dema.data.training)
and, on resume, that it is the dataset the run was started on and that train_state.pt is this
run's. Only then is an existing run directory replaced (`--overwrite`) or written to; the run
directory is locked (dema.run.lock) from then until training ends.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
import torch

from dema.data.recorded_env import reference_note
from dema.data.training import check_data_kind, check_learnable, check_trajectory_batch, dataset_identity, scoring_env
from dema.envs import DEFAULT_SUFFIX, ENVS, EnvSpec
from dema.evaluation.evaluate import check_simulator
from dema.errors import ConfigError, DataError, DemaError
from dema.files import write_failed
from dema.run import NormStats, RunDir, TrainConfig
from dema.run.checkpoint import Progress, TrainingParts, restore_train_state, save_train_state
from dema.run.config import check_device
from dema.run.lock import RunLock
from dema.train.optim import build_optimizer


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
        wall_seconds = self.wall_before + time.perf_counter() - self.started
        save_train_state(self.run, self._parts(), Progress(self.step, self.train_seconds, wall_seconds, self.best,
                                                           self.run_id, self.interval))

    def restore(self, log=print) -> None:
        """The state of the last good checkpoint: train_state.pt, else (damaged) train_state.prev.pt."""
        saved = restore_train_state(self.run, self._parts(), self.run_id, log)
        self.step, self.train_seconds, self.best = saved.step, saved.train_seconds, saved.best
        self.wall_before = saved.wall_seconds
        self.interval = {**empty_interval(), **saved.interval}

    def _parts(self) -> TrainingParts:
        return TrainingParts(self.policy, self.optimizer, self.scheduler, self.stream, self.config.device)

    def close(self) -> None:
        """Release the run directory's lock (the end of training, however it ends)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def start(config: TrainConfig, resume: bool, log=print) -> Session:
    """Validate, load the data, build the parts, then create (or replace) or resume the run directory.

    Everything that can be checked is checked before the run directory is touched; the returned
    session holds the run directory's lock (release it with `Session.close`)."""
    from dema.data.load import load_training_data
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
        # a DQN-replay game folder with data.max_transitions is sampled as DT does (dema.data.load)
        dataset = load_training_data(config.data.dataset, config.data.max_transitions, config.seed)
        spec, references = scoring_env(dataset, config.data.dataset)
        check_data_kind(dataset, spec)  # Atari: discrete actions of the game, 84x84 uint8 frames
        data = TrajectoryDataset(dataset, config.model.context_len, config.data.reward_scale, config.data.delayed,
                                 seed=config.seed, frame_stack=max(spec.frame_stack, 1))
        if config.model.recurrent:
            check_trajectory_batch(data, config.optim.batch_size, dataset.source or config.data.dataset)
        check_learnable(dataset, data, spec, config.data.reward_scale, config.data.dataset, log)
        _check_episode_lengths(config, data, spec, dataset.source or config.data.dataset, log)
        # the run's lines only once its data loaded and passed its checks: a missing dataset is its
        # one error line, not the end of a config dump about a folder that is never made
        log(f"run directory: {run.path}")
        if restarting:
            log("note: this run stopped before its first checkpoint (nothing to keep); starting it again from update 0")
        log("config: " + json.dumps(config.to_dict(), indent=2))
        if config.preset.endswith(DEFAULT_SUFFIX):
            log(f"preset {config.preset}: no preset of the paper names {config.data.dataset}, so the model's sizes "
                "and learning rate are its environment's defaults (--preset, --model.*, --optim.lr override them)")
        log(f"scores: {spec.gym_id}, normalised with {reference_note(references)}: {spec.ref_min_score:g} is 0, "
            f"{spec.ref_max_score:g} is 100")
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
        optimizer, scheduler = build_optimizer(policy, config.optim)
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
                                 **scoring_record(spec, references),
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
                       "pass --overwrite to replace it, or choose another --run-name")


def _check_episode_lengths(config: TrainConfig, data, spec: EnvSpec, src: str, log) -> None:
    """A timestep embedding (model.position_embedding) has model.max_ep_len rows: the data's episodes
    must fit them, and evaluation episodes longer than that share the last row (a warning)."""
    model = config.model
    if not model.position_embedding:
        return
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
            "or train a new run on this data (another --run-name, or --overwrite)")
    return saved.get("run_id") or uuid.uuid4().hex


def _check_not_behind(config: TrainConfig, step: int, run: RunDir) -> None:
    """A resume never undoes updates: with fewer updates than already trained it would train nothing,
    yet record the smaller number in config.json next to weights of more updates."""
    if config.schedule.updates < step:
        raise ConfigError(f"--resume {run.path}: --schedule.updates {config.schedule.updates} is fewer than the "
                          f"{step} updates the run has already trained, and a resume never undoes updates. Fix: give "
                          f"--schedule.updates {step} or more, or train a new run (another --run-name) for fewer")


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


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def scoring_record(spec: EnvSpec, references: str) -> dict:
    """What normalization.json keeps of the scoring environment beyond its name (RunDir.load rebuilds it):
    the reference scores and their source, and the whole spec of an environment outside dema's table."""
    record = {"reference_scores": {"min": spec.ref_min_score, "max": spec.ref_max_score, "source": references}}
    if spec.name not in ENVS or ENVS[spec.name].gym_id != spec.gym_id:
        record["env_spec"] = dataclasses.asdict(spec)
    return record
