"""The one training loop, for every model of the trunk.

Transformer-like models (DeMa, BL3D, DeMa-post, DT, DC, BC) train on K-step windows sampled as
Decision Transformer does; RNN-like DeMa (`model.recurrent`) on whole trajectories, with
`optim.updates_per_batch` updates on each batch as in the paper (`dema.data.streams`). Setup and
resume are `dema.train.setup`, the optimiser and its schedule `dema.train.optim`, the checkpoint's
format `dema.run.checkpoint`; logging and evaluations `dema.train.metrics`; the files of the run
directory `dema.run.directory`. Rows of metrics.csv/evals.csv past a resumed step are dropped,
since they will be recomputed. Training and then scoring the final weights is
`dema.train.pipeline.train_and_evaluate`.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from dema.errors import DemaError
from dema.files import write_failed
from dema.run import EVAL_FIELDS, METRIC_FIELDS, TrainConfig
from dema.run.checkpoint import last_checkpoint_note
from dema.train.metrics import MetricLogger
from dema.train.setup import start


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


def train(config: TrainConfig, resume: bool = False, stop_at: int | None = None, log=print) -> TrainResult:
    """Train (or resume) the run of `config`; `stop_at` ends early after that step (for tests)."""
    s = start(config, resume, log)  # holds the run directory's lock until s.close()
    try:
        return _train(s, config, stop_at, log)
    except OSError as exc:  # a full disk or a vanished folder while writing metrics, evaluations, logs
        raise write_failed(getattr(exc, "filename", None) or s.run.path, exc,
                           f"Training stopped at update {s.step}; {last_checkpoint_note(s.run)}, "
                           f"and `dema train --resume {s.run.path}` continues from it.") from None
    finally:
        s.close()


def _train(s, config: TrainConfig, stop_at: int | None, log) -> TrainResult:
    from tqdm import tqdm

    for path, fields in ((s.run.metrics, METRIC_FIELDS), (s.run.evals, EVAL_FIELDS)):
        damaged = s.run.truncate_csv(path, fields, s.step)
        if damaged:  # dropped, never kept as text a report would misread
            log(f"note: {path.name} held {damaged} damaged row(s) (bytes that are not text, or a field that is "
                "not a number); dropped, the rest kept")
    schedule, device = config.schedule, torch.device(config.device)
    end = schedule.updates if stop_at is None else min(stop_at, schedule.updates)
    bar = tqdm(total=schedule.updates, initial=s.step, disable=not config.progress, file=sys.stderr,
               dynamic_ncols=True, leave=False)
    metrics = MetricLogger(s, bar.write if config.progress else log)
    s.policy.train()
    try:
        while s.step < end:
            began = time.perf_counter()
            loss, grad_norm = one_update(s, s.stream.next().to(device))
            s.step += 1
            seconds = time.perf_counter() - began
            s.train_seconds += seconds
            metrics.update(loss, grad_norm, seconds)
            bar.update(1)
            # not at `end` when it is a stop before the last update: the interval's sums go into the
            # checkpoint and continue on resume, so metrics.csv is the uninterrupted run's
            if s.step % schedule.log_every == 0 or s.step == schedule.updates:
                metrics.write_row()
            if schedule.eval_every and (s.step % schedule.eval_every == 0 or s.step == schedule.updates):
                metrics.evaluate()
            if s.step % schedule.checkpoint_every == 0 or s.step == end:
                s.checkpoint()
    finally:
        bar.close()
        metrics.close()
    ms = 1000 * s.train_seconds / max(s.step, 1)
    log(f"trained {s.step} updates in {s.train_seconds:.0f} s of updates ({ms:.1f} ms/step); run {s.run.path}")
    return TrainResult(s.run.path, s.step, s.train_seconds, ms, s.best, s.params)


def one_update(s, batch) -> tuple[float, float]:
    """One AdamW step with the warm-up and the gradient-norm clip; stops on a non-finite value.
    (Also what `dema bench node --updates` times.)"""
    loss = s.policy.loss(batch)
    if not torch.isfinite(loss):
        raise TrainingDiverged(_diverged("loss", loss.item(), s))
    s.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(s.policy.parameters(), s.config.optim.grad_clip or math.inf)
    if not torch.isfinite(grad_norm):
        raise TrainingDiverged(_diverged("gradient norm", grad_norm.item(), s))
    s.optimizer.step()
    s.scheduler.step()
    return loss.item(), grad_norm.item()


def _diverged(what: str, value: float, s) -> str:
    return (f"training stopped: the {what} is {value} at update {s.step + 1}; {last_checkpoint_note(s.run)}. "
            "Try a lower --optim.lr or a smaller --optim.grad-clip, then resume or start again.")
