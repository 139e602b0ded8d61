"""What a training run reports while it runs: metrics.csv rows, log lines, TensorBoard scalars,
and the evaluations in the simulator that feed evals.csv and best.safetensors."""

from __future__ import annotations

import torch

from dema.errors import ConfigError
from dema.run import EVAL_FIELDS, METRIC_FIELDS
from dema.train.setup import Session, empty_interval


class MetricLogger:
    """Averages loss, gradient norm and step time over each log interval."""

    def __init__(self, session: Session, say):
        self.session, self.say = session, say
        self.writer = _tensorboard(session.run.tensorboard) if session.config.tensorboard else None
        self.last_eval = ""

    def update(self, loss: float, grad_norm: float, seconds: float) -> None:
        """Add an update to the interval's sums, which live on the session: a checkpoint saves them, so an
        interval cut by an interruption continues on resume."""
        sums = self.session.interval
        sums["loss"], sums["grad_norm"] = sums["loss"] + loss, sums["grad_norm"] + grad_norm
        sums["seconds"], sums["steps"] = sums["seconds"] + seconds, sums["steps"] + 1

    def write_row(self) -> None:
        s, sums = self.session, self.session.interval
        steps = max(sums["steps"], 1)
        row = {"step": s.step, "loss": sums["loss"] / steps, "grad_norm": sums["grad_norm"] / steps,
               "lr": s.scheduler.get_last_lr()[0], "ms_per_step": 1000 * sums["seconds"] / steps,
               "train_seconds": s.train_seconds}
        s.run.append_csv(s.run.metrics, METRIC_FIELDS, row)
        if self.writer:
            for key in ("loss", "grad_norm", "lr", "ms_per_step"):
                self.writer.add_scalar(f"train/{key}", row[key], s.step)
        self.say(f"step {s.step:>7}/{s.config.schedule.updates} | loss {row['loss']:.4f} | grad {row['grad_norm']:.3f}"
                 f" | lr {row['lr']:.2e} | {row['ms_per_step']:.1f} ms/step{self.last_eval}")
        s.interval = empty_interval()

    def evaluate(self) -> None:
        """Roll the policy out (the first target, train_episodes per seed); keep the best weights."""
        from dema.evaluation.evaluate import evaluate

        s, ev = self.session, self.session.config.eval
        target = (ev.targets or s.spec.return_targets)[0]
        with torch.random.fork_rng(devices=[]):  # never shifts the training RNG
            result = evaluate(s.policy, s.config.model, s.stats, s.spec, ev.train_episodes, ev.seeds, (target,),
                              ev.max_envs, ev.max_episode_steps, s.config.device)
        row = {"step": s.step, "target": target, **{k: result[k] for k in EVAL_FIELDS[2:]}}
        s.run.append_csv(s.run.evals, EVAL_FIELDS, row)
        if s.best is None or row["normalized_mean"] > s.best["normalized_mean"]:
            s.best = {"step": s.step, "normalized_mean": row["normalized_mean"], "return_mean": row["return_mean"]}
            s.run.save_weights(s.policy, s.run.best_weights, s.step, s.run_id)  # the id: see RunDir.load_weights
        if self.writer:
            self.writer.add_scalar("eval/normalized_mean", row["normalized_mean"], s.step)
        self.last_eval = f" | eval {row['normalized_mean']:.1f} (best {s.best['normalized_mean']:.1f} @ {s.best['step']})"
        self.say(f"eval at step {s.step}: return {row['return_mean']:.1f} +- {row['return_std']:.1f}, "
                 f"normalised {row['normalized_mean']:.1f} +- {row['normalized_std']:.1f} "
                 f"({row['episodes']} episodes, target {row['target']:g})")

    def close(self) -> None:
        if self.writer:
            self.writer.close()


def _tensorboard(folder):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("--tensorboard needs the tensorboard package: "
                          'pip install tensorboard (or the extra: pip install -e ".[tb]")') from None
    return SummaryWriter(str(folder))
