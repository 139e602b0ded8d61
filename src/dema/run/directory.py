"""A run directory: the files one training run writes and evaluation, reports and sweeps read.

    runs/<dataset>_<model>_<protocol>_s<seed>/
        config.json          the resolved TrainConfig
        normalization.json   state mean/std, reward scale, delayed, env, sizes: enough to act
        model.safetensors    weights at the last checkpoint (metadata: step)
        best.safetensors     weights at the best evaluation during training
        train_state.pt       the full resume state (dema.train.state)
        metrics.csv          one row per log interval (METRIC_FIELDS)
        evals.csv            one row per evaluation during training (EVAL_FIELDS)
        eval.json            the final evaluation (dema eval, and at the end of training)
        provenance.json      one entry per training session: time, code commit, first update, versions, machine

This module is the only place that knows these names and schemas; `dema.train` writes through it
and `dema.evaluation` reads through it, and it imports neither.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dema.envs import EnvSpec, env_spec
from dema.errors import DemaError
from dema.files import atomic_write
from dema.run.config import TrainConfig

METRIC_FIELDS = ["step", "loss", "grad_norm", "lr", "ms_per_step", "train_seconds"]
EVAL_FIELDS = ["step", "target", "episodes", "return_mean", "return_std", "normalized_mean", "normalized_std"]
CHECKPOINTS = {"final": "model.safetensors", "best": "best.safetensors"}


def write_json(path: Path, data) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2) + "\n"))


@dataclass
class NormStats:
    """What acting needs from the dataset: saved as normalization.json next to the weights."""

    state_mean: np.ndarray  # (S,)
    state_std: np.ndarray  # (S,)
    reward_scale: float
    delayed: bool

    def to_dict(self) -> dict:
        return {"state_mean": [float(x) for x in self.state_mean], "state_std": [float(x) for x in self.state_std],
                "reward_scale": self.reward_scale, "delayed": self.delayed}

    @classmethod
    def from_dict(cls, data: dict) -> "NormStats":
        return cls(np.asarray(data["state_mean"], np.float32), np.asarray(data["state_std"], np.float32),
                   float(data["reward_scale"]), bool(data["delayed"]))


@dataclass
class LoadedRun:
    """A run directory read back: what evaluation needs without the dataset."""

    path: Path
    config: TrainConfig
    stats: NormStats
    spec: EnvSpec
    state_dim: int
    act_dim: int


class RunDir:
    """The files of one run directory, by role."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    config = property(lambda self: self.path / "config.json")
    normalization = property(lambda self: self.path / "normalization.json")
    weights = property(lambda self: self.path / CHECKPOINTS["final"])
    best_weights = property(lambda self: self.path / CHECKPOINTS["best"])
    train_state = property(lambda self: self.path / "train_state.pt")
    metrics = property(lambda self: self.path / "metrics.csv")
    evals = property(lambda self: self.path / "evals.csv")
    eval_report = property(lambda self: self.path / "eval.json")
    tensorboard = property(lambda self: self.path / "tb")
    provenance = property(lambda self: self.path / "provenance.json")

    def checkpoint(self, name: str) -> Path:
        """"final" or "best" -> its weights file."""
        return self.path / CHECKPOINTS[name]

    # ------------------------------------------------------------------ reading
    def load(self) -> LoadedRun:
        for name in ("config.json", "normalization.json"):
            if not (self.path / name).is_file():
                raise DemaError(f"{self.path} is not a trained run: {name} is missing (train one with `dema train`)")
        config = TrainConfig.load(self.config)
        norm = self.read_json(self.normalization)
        return LoadedRun(self.path, config, NormStats.from_dict(norm), env_spec(norm["env"]),
                         int(norm["state_dim"]), int(norm["act_dim"]))

    def read_json(self, path: Path) -> dict:
        try:
            return json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DemaError(f"cannot read {path}: {exc}") from None

    def rows(self, path: Path) -> list[dict]:
        """The rows of metrics.csv or evals.csv (empty when absent)."""
        if not path.is_file():
            return []
        with path.open() as f:
            return list(csv.DictReader(f))

    def best_evaluation(self) -> dict | None:
        """The best evaluation during training (evals.csv): the figure the paper's code reports."""
        rows = self.rows(self.evals)
        if not rows:
            return None
        best = max(rows, key=lambda r: float(r["normalized_mean"]))
        return {"step": int(best["step"]), "normalized_mean": float(best["normalized_mean"]),
                "normalized_std": float(best["normalized_std"]), "return_mean": float(best["return_mean"]),
                "return_std": float(best["return_std"]), "episodes": int(best["episodes"]), "evaluations": len(rows)}

    def checkpoint_step(self, name: str) -> int | None:
        from safetensors import safe_open

        with safe_open(str(self.checkpoint(name)), framework="pt") as f:
            meta = f.metadata() or {}
        return int(meta["step"]) if "step" in meta else None

    # ------------------------------------------------------------------ writing
    def write_config(self, config: TrainConfig) -> None:
        write_json(self.config, config.to_dict())

    def write_normalization(self, data: dict) -> None:
        write_json(self.normalization, data)

    def write_eval(self, report: dict) -> Path:
        write_json(self.eval_report, report)
        return self.eval_report

    def add_session(self, step: int) -> None:
        """Record that a training session starts at update `step`: when, from which code, where."""
        from dema import provenance

        sessions = self.read_json(self.provenance)["sessions"] if self.provenance.is_file() else []
        sessions.append({"at": _now(), "commit": provenance.git_commit(), "from_step": step,
                         "versions": provenance.versions(), "machine": provenance.machine()})
        write_json(self.provenance, {"sessions": sessions})

    def save_weights(self, policy, path: Path, step: int) -> None:
        from safetensors.torch import save_file

        tensors = {k: v.detach().contiguous().clone() for k, v in policy.state_dict().items()}
        atomic_write(path, lambda p: save_file(tensors, str(p), metadata={"step": str(step)}))

    def truncate_csv(self, path: Path, fieldnames: list[str], last_step: int) -> None:
        """Keep the header and the rows up to `last_step` (rows after it are recomputed on resume)."""
        rows = [r for r in self.rows(path) if int(r["step"]) <= last_step]

        def write(tmp: Path) -> None:
            with tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fieldnames)
                writer.writeheader()
                writer.writerows(rows)

        atomic_write(path, write)

    def append_csv(self, path: Path, fieldnames: list[str], row: dict) -> None:
        with path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=fieldnames).writerow(row)


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
