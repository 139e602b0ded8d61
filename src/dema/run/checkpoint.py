"""train_state.pt, a training run's full resume state: the only code that writes or reads it.

A checkpoint holds the weights, the optimiser's, scheduler's and batch stream's states, every RNG
state (torch, numpy, Python, CUDA), the step, the best evaluation, the time spent, the sums of the
current log interval, the run id and the compute path that wrote it.

    save_train_state(run, parts, progress)       # atomic; the one it replaces is kept as train_state.prev.pt
    progress = restore_train_state(run, parts)   # the last good checkpoint into the parts and the RNGs
    read_train_state(path)                       # one file, verified (status lines, reports)

Reading verifies (the file loads, has every part, its weights are finite); a resume falls back to
train_state.prev.pt when the latest is damaged. Resume is exact: on the CPU a killed and resumed
run ends with bit-identical weights (tested), on the compute path that wrote the checkpoint.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dema.errors import DemaError
from dema.files import atomic_write, write_failed
from dema.run.directory import RunDir
from dema.scan.paths import canonical_record, current_paths

# What a file needs to be a training state (older checkpoints lack wall_seconds, interval, compute, run_id).
STATE_KEYS = ("step", "train_seconds", "best", "model", "optimizer", "scheduler", "stream", "rng")


@dataclass
class TrainingParts:
    """What a checkpoint saves the state of, and where a resume loads it back into."""

    policy: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    stream: object  # dema.data.streams.WindowStream or TrajectoryStream
    device: str


@dataclass
class Progress:
    """How far a run is, as saved with its checkpoint."""

    step: int
    train_seconds: float  # wall time in updates only (no evaluation, no checkpoints)
    wall_seconds: float  # wall time of all the run's sessions up to the checkpoint
    best: dict | None  # {"step", "normalized_mean", "return_mean"} of the best evaluation
    run_id: str  # identity.json's
    interval: dict  # the current log interval's sums (dema.train.metrics)


def save_train_state(run: RunDir, parts: TrainingParts, progress: Progress) -> None:
    """train_state.pt, replaced atomically; the one it replaces is kept as train_state.prev.pt. A
    failed write (a full disk) is a DemaError that says which checkpoint is still there."""
    state = {"step": progress.step, "train_seconds": progress.train_seconds, "wall_seconds": progress.wall_seconds,
             "best": progress.best, "model": parts.policy.state_dict(), "optimizer": parts.optimizer.state_dict(),
             "scheduler": parts.scheduler.state_dict(), "stream": parts.stream.state_dict(), "rng": _rng_states(),
             "run_id": progress.run_id, "interval": dict(progress.interval), "compute": compute_path(parts.device)}
    try:
        atomic_write(run.train_state, lambda p: torch.save(state, p), keep_previous=run.previous_train_state)
    except Exception as exc:  # torch reports a full disk as a RuntimeError from its zip writer
        raise write_failed(run.train_state, exc, f"Training stopped at update {progress.step}; "
                           f"{last_checkpoint_note(run)}.") from None


def restore_train_state(run: RunDir, parts: TrainingParts, run_id: str, log=print) -> Progress:
    """Load the last good checkpoint (train_state.pt, else, damaged, train_state.prev.pt) into `parts`
    and the process's RNGs; its progress. A checkpoint of another run, or one that does not fit the
    parts, is a DemaError with the fix."""
    state, path = load_train_state(run, log)
    saved_id = state.get("run_id")
    if saved_id and run_id and saved_id != run_id:
        raise DemaError(f"{path} belongs to another run (run id {saved_id}; this run's, in identity.json, is "
                        f"{run_id}): it was copied from another run directory. Put that run's own "
                        "train_state.pt back, or start this run again with --overwrite")
    try:
        parts.policy.load_state_dict(state["model"])
        parts.optimizer.load_state_dict(state["optimizer"])
        parts.scheduler.load_state_dict(state["scheduler"])
        parts.stream.load_state_dict(state["stream"])
        _set_rng_states(state["rng"])
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise DemaError(f"{path} does not fit this run's model, optimiser or data ({first}); was it copied "
                        "from another run? Put the run's own checkpoint back, or start again with "
                        "--overwrite") from None
    _note_compute_change(state.get("compute"), compute_path(parts.device), log)
    return Progress(state["step"], state["train_seconds"], state.get("wall_seconds", 0.0), state["best"], run_id,
                    state.get("interval", {}))  # older checkpoints: no interval (an empty one)


def load_train_state(run: RunDir, log=print) -> tuple[dict, Path]:
    """The resume state, verified: train_state.pt, or the previous checkpoint train_state.prev.pt when
    the latest is damaged (the damaged one is moved aside); a DemaError naming the files when neither
    is usable."""
    problems = []
    for path in (run.train_state, run.previous_train_state):
        if not path.is_file():
            problems.append(f"{path.name} is missing")
            continue
        try:
            state = read_train_state(path)
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
                    "run again with --overwrite (or restore them from a copy)")


def read_train_state(path: Path) -> dict:
    """One train_state.pt, verified: it loads, has every part, and its weights are finite; else a
    DemaError naming the damage."""
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


def training_time(run: RunDir) -> dict | None:
    """{"step", "train_seconds", "wall_seconds"} of the last checkpoint, for eval.json; None without a
    readable one (a damaged train_state.pt does not stop an evaluation of the weights, verified apart)."""
    if not run.train_state.is_file():
        return None
    try:
        state = read_train_state(run.train_state)
    except DemaError:
        return None
    return {"step": state["step"], "train_seconds": state["train_seconds"], "wall_seconds": state.get("wall_seconds")}


def last_checkpoint_note(run: RunDir) -> str:
    """Where a stopped run can be picked up again, for error messages."""
    for path in (run.train_state, run.previous_train_state):
        if path.is_file():
            try:
                last = read_train_state(path)["step"]
            except DemaError:
                continue
            return f"the last good checkpoint (step {last}) is kept in {run.path}"
    return "no checkpoint had been written yet"


def compute_path(device: str) -> dict:
    """What chooses the bits of an update besides the checkpoint: the kernels the compute paths name
    (dema.scan.paths, recorded as the environment variables that set them; each gives the same
    results up to float rounding, not the same bits), the device and its hardware, and (on the CPU)
    torch's threads."""
    from dema import machine

    where = torch.device(device)
    if where.type == "cuda":
        return {"device": str(where), "hardware": torch.cuda.get_device_name(where),
                **current_paths().record()}
    return {"device": str(where), "hardware": machine.cpu_model(), "threads": torch.get_num_threads(),
            **current_paths().record()}


def _note_compute_change(saved: dict | None, now: dict, log) -> None:
    """Resume is bit-exact only on the compute path that wrote the checkpoint; on another it is a
    correct continuation whose numbers differ by float rounding, and the user should know which."""
    if not saved:
        return  # a checkpoint of an older dema: its path is unknown
    saved = canonical_record(saved)  # the paths' names of when it was written, in today's
    changed = [f"{key} {saved[key] or 'unset'} -> {now[key] or 'unset'}" for key in now
               if key in saved and saved[key] != now[key]]
    if changed:
        log(f"note: this checkpoint was written under another compute path ({'; '.join(changed)}): the run "
            "continues correctly, but no longer bit-identical to an uninterrupted run")


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
