"""A run directory: the files one training run writes and evaluation, reports and sweeps read.

    runs/<dataset>_<model>_<protocol>_s<seed>/
        config.json          the resolved TrainConfig
        normalization.json   state mean/std, reward scale, delayed, env, sizes: enough to act
        identity.json        the run's id and its dataset's identity (path, bytes, content hash, sizes)
        model.safetensors    weights at the last checkpoint (metadata: step, run id, sha256 of the tensors)
        best.safetensors     weights at the best evaluation during training
        train_state.pt       the full resume state (dema.run.checkpoint), with the run id
        train_state.prev.pt  the checkpoint before it, kept until a newer one is complete (the fallback)
        metrics.csv          one row per log interval (METRIC_FIELDS)
        evals.csv            one row per evaluation during training (EVAL_FIELDS)
        eval.json            the final evaluation (dema eval, and at the end of training)
        provenance.json      one entry per training session: time, code commit, first update, versions, machine
        videos/              episodes recorded by `dema eval --video` (final_target<T>_seed<S>_episode<J>.mp4 or .gif)
        policy.onnx          `dema export`: the final checkpoint's decision as an ONNX model (policy-best.onnx: the best)
        policy.json          beside it: env, targets, inputs, outputs and the recurrent state's layout
        .lock                held (flock) by the process working on the run: its pid, host and command

This module is the only place that knows these names and schemas; `dema.train` writes through it
and `dema.evaluation` reads through it, and it imports neither. Weights are verified when read
(`load_weights`: the file loads, its checksum matches, every value is finite); a file that fails is a
DemaError naming it, never a silent NaN score.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dema.envs import EnvSpec, env_spec
from dema.errors import DemaError
from dema.files import atomic_write, write_failed
from dema.run.config import TrainConfig
from dema.run.lock import LOCK_NAME, RunLock

METRIC_FIELDS = ["step", "loss", "grad_norm", "lr", "ms_per_step", "train_seconds"]
EVAL_FIELDS = ["step", "target", "episodes", "return_mean", "return_std", "normalized_mean", "normalized_std"]
CHECKPOINTS = {"final": "model.safetensors", "best": "best.safetensors"}


def _is_dema_json(path: Path, key: str) -> bool:
    try:
        return path.is_file() and key in json.loads(path.read_text())
    except (OSError, ValueError, TypeError):
        return False


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
    references: str = "table"  # where spec's reference scores come from: "table" (dema.envs) or "dataset"


def scoring_env(norm: dict) -> EnvSpec:
    """The environment a run is scored in, from its normalization.json: the table's entry of `env`, or
    the whole `env_spec` of an environment outside the table (a Minari dataset's), with the reference
    scores training chose (`reference_scores`: the dataset's own or the table's; runs made before dema
    recorded them use the table's)."""
    if "env_spec" in norm:
        fields = dict(norm["env_spec"])
        fields["return_targets"] = tuple(fields["return_targets"])
        fields["aliases"] = tuple(fields.get("aliases", ()))
        if fields.get("measured_ref_scores") is not None:
            fields["measured_ref_scores"] = tuple(fields["measured_ref_scores"])
        spec = EnvSpec(**fields)
    else:
        spec = env_spec(norm["env"])
    refs = norm.get("reference_scores")
    if refs:
        spec = dataclasses.replace(spec, ref_min_score=float(refs["min"]), ref_max_score=float(refs["max"]))
    return spec


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
    previous_train_state = property(lambda self: self.path / "train_state.prev.pt")
    identity = property(lambda self: self.path / "identity.json")
    metrics = property(lambda self: self.path / "metrics.csv")
    evals = property(lambda self: self.path / "evals.csv")
    eval_report = property(lambda self: self.path / "eval.json")
    tensorboard = property(lambda self: self.path / "tb")
    provenance = property(lambda self: self.path / "provenance.json")
    videos = property(lambda self: self.path / "videos")

    def checkpoint(self, name: str) -> Path:
        """"final" or "best" -> its weights file."""
        return self.path / CHECKPOINTS[name]

    def exported(self, checkpoint: str, suffix: str = ".onnx") -> Path:
        """Where `dema export` writes a checkpoint's model by default (its JSON: the same name, .json)."""
        return self.path / (f"policy{'' if checkpoint == 'final' else '-' + checkpoint}{suffix}")

    # ------------------------------------------------------------------ the folder itself
    @staticmethod
    def video_name(checkpoint: str, target: float, seed: int, episode: int, fmt: str) -> str:
        """The file name of a recorded episode (in `videos`): episode counts the seed's episodes from 0."""
        return f"{checkpoint}_target{target:g}_seed{seed}_episode{episode}.{fmt}"

    def lock(self, purpose: str = "") -> RunLock:
        """The run's exclusive lock (dema.run.lock); acquire() it, or use it in a `with`."""
        return RunLock(self.path, purpose)

    def occupied(self) -> bool:
        """True when the folder holds anything but its lock file."""
        return self.path.is_dir() and any(p.name != LOCK_NAME for p in self.path.iterdir())

    def has_checkpoint(self) -> bool:
        """Did training ever save anything worth keeping here (a resume state, weights, a score)?"""
        return any(p.is_file() for p in (self.train_state, self.previous_train_state, self.weights, self.eval_report))

    def foreign(self) -> str | None:
        """Why this folder is not a run directory of dema's, or None when it is one: it holds dema's
        config.json (or identity.json) and no folder of its own project or of another run. `--overwrite`
        and a restart empty only run directories, so a run name of `.`, `..` or any existing folder
        can never empty that folder."""
        if not self.path.is_dir():
            return None
        entries = [p for p in self.path.iterdir() if p.name != LOCK_NAME]
        nested = [p.name for p in entries if p.is_dir() and ((p / "config.json").is_file() or p.name == ".git")]
        if nested:
            return f"it holds {', '.join(sorted(nested)[:3])} (a repository or other runs)"
        if not any(_is_dema_json(self.path / name, key) for name, key in (("config.json", "model_name"),
                                                                          ("identity.json", "run_id"))):
            shown = ", ".join(sorted(p.name for p in entries)[:4]) + (", ..." if len(entries) > 4 else "")
            return f"it has no config.json or identity.json of dema's (it holds {shown})"
        return None

    def clear(self) -> None:
        """Remove everything but the lock file (whose lock the caller holds): `--overwrite`, or a restart
        of a run that never checkpointed. Refuses (DemaError) a folder that is not a run directory."""
        import shutil

        why = self.foreign()
        if why is not None:
            raise DemaError(f"{self.path} is not a run directory of dema's: {why}; dema replaces only run "
                            "directories it made. Choose another --run-name or --runs-dir")
        for item in self.path.iterdir():
            if item.name == LOCK_NAME:
                continue
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item)
            else:
                item.unlink()

    # ------------------------------------------------------------------ reading
    def load(self) -> LoadedRun:
        for name in ("config.json", "normalization.json"):
            if not (self.path / name).is_file():
                raise DemaError(f"{self.path} is not a trained run: {name} is missing (train one with `dema train`)")
        config = TrainConfig.load(self.config)
        norm = self.read_json(self.normalization)
        try:
            run = LoadedRun(self.path, config, NormStats.from_dict(norm), scoring_env(norm),
                            int(norm["state_dim"]), int(norm["act_dim"]),
                            (norm.get("reference_scores") or {}).get("source", "table"))
        except (KeyError, TypeError, ValueError) as exc:
            raise DemaError(f"{self.normalization} is damaged ({type(exc).__name__}: {exc}); `dema train --resume "
                            f"{self.path}` writes it again") from None
        problem = _stats_problem(run)
        if problem:
            raise DemaError(f"{self.normalization} is damaged: {problem}; `dema train --resume {self.path}` writes "
                            "it again")
        return run

    def read_json(self, path: Path) -> dict:
        try:
            return json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DemaError(f"cannot read {path}: {exc}") from None

    def rows(self, path: Path) -> list[dict]:
        """The rows of metrics.csv or evals.csv (empty when absent). A damaged file (bytes that are not
        UTF-8 from a bad copy or disk, a line csv cannot parse) never stops a command: bad bytes read as
        U+FFFD and reading ends at an unparsable line, so the damaged rows fail their readers' number
        checks (`numeric_rows`)."""
        if not path.is_file():
            return []
        rows = []
        with path.open(encoding="utf-8", errors="replace", newline="") as f:
            try:
                rows.extend(csv.DictReader(f))
            except csv.Error:
                pass  # the rest of the file is unreadable: the rows before it are kept
        return rows

    def numeric_rows(self, path: Path, fields: list[str]) -> tuple[list[dict], int]:
        """(the rows whose step and `fields` read as numbers, how many other rows there were: damaged
        ones). An empty field (a column an older dema did not write) is not damage."""
        rows = self.rows(path)
        good = [r for r in rows if _parses(r.get("step"))
                and all(_parses(r[name]) for name in fields if r.get(name) not in (None, ""))]
        return good, len(rows) - len(good)

    def best_evaluation(self) -> dict | None:
        """The best evaluation during training (evals.csv): the figure the paper's code reports."""
        needed = ("step", "normalized_mean", "normalized_std", "return_mean", "return_std", "episodes")
        rows = [r for r in self.rows(self.evals) if all(_number(r.get(k)) is not None for k in needed)]  # damaged go
        if not rows:
            return None
        best = max(rows, key=lambda r: float(r["normalized_mean"]))
        return {"step": int(float(best["step"])), "normalized_mean": float(best["normalized_mean"]),
                "normalized_std": float(best["normalized_std"]), "return_mean": float(best["return_mean"]),
                "return_std": float(best["return_std"]), "episodes": int(float(best["episodes"])),
                "evaluations": len(rows)}

    def checkpoint_step(self, name: str) -> int | None:
        from safetensors import safe_open

        try:
            with safe_open(str(self.checkpoint(name)), framework="pt") as f:
                meta = f.metadata() or {}
            return int(meta["step"]) if "step" in meta else None
        except Exception:  # a damaged file: load_weights reports it
            return None

    def load_weights(self, path: Path, device: str = "cpu") -> dict:
        """The tensors of a weights file, verified: it loads, its recorded checksum matches, and
        every value is finite; otherwise a DemaError naming the file and what to do."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise DemaError(f"{path} does not exist; the run has no such checkpoint yet")
        try:
            with safe_open(str(path), framework="pt", device=device) as f:
                meta = f.metadata() or {}
                tensors = {key: f.get_tensor(key) for key in f.keys()}
        except Exception as exc:  # safetensors raises its own error types for a truncated or garbled file
            raise DemaError(f"{path} is damaged and cannot be read ({_first_line(exc)}). "
                            f"{self._repair_hint(path)}") from None
        expected = meta.get("sha256")
        if expected and _checksum(tensors) != expected:
            raise DemaError(f"{path} is damaged: its tensors do not match the checksum written with them. "
                            f"{self._repair_hint(path)}")
        bad = [key for key, t in tensors.items() if t.is_floating_point() and not bool(t.isfinite().all())]
        if bad:
            raise DemaError(f"{path} holds NaN or inf weights ({len(bad)} of {len(tensors)} tensors, first "
                            f"{bad[0]}): the file is damaged or the run diverged. {self._repair_hint(path)}")
        self._check_own(path, meta.get("run_id"))
        return tensors

    def _check_own(self, path: Path, weights_id: str | None) -> None:
        """Weights of another run of the same model load without a complaint, and their score would be
        written into this run's eval.json: the run id in the file's metadata must be this run's (files
        and runs made before dema recorded ids are not checked)."""
        try:
            identity = self.read_identity()
        except DemaError:  # a damaged identity.json: the commands that need it report it
            return
        own = identity.get("run_id") if isinstance(identity, dict) else None
        if weights_id and own and weights_id != own:
            hint = self._repair_hint(path)
            if path.name == CHECKPOINTS["best"]:
                hint = (f"Put this run's own {path.name} back, or remove it and score the final weights alone "
                        f"(`dema eval {self.path} --checkpoint final`)")
            raise DemaError(f"{path} belongs to another run (run id {weights_id}; this run's, in identity.json, is "
                            f"{own}): it was copied from another run directory. {hint}")

    def _repair_hint(self, path: Path) -> str:
        if path.name == CHECKPOINTS["final"] and self.train_state.is_file():
            return (f"train_state.pt holds the weights of the last checkpoint: `dema train --resume {self.path}` "
                    "rewrites it")
        return "Train the run again (or restore the file from a copy)"

    # ------------------------------------------------------------------ writing
    def write_config(self, config: TrainConfig) -> None:
        write_json(self.config, config.to_dict())

    def write_normalization(self, data: dict) -> None:
        write_json(self.normalization, data)

    def write_eval(self, report: dict) -> Path:
        """eval.json, only for a valid evaluation: episodes were run and every score is a number (an
        earlier eval.json is never replaced by a NaN one)."""
        checked = [report] + [report[k] for k in ("best_checkpoint",) if report.get(k)]
        for part in checked:
            values = [part.get("return_mean"), part.get("normalized_mean")]
            values += [t.get(k) for t in part.get("per_target", []) for k in ("return_mean", "normalized_mean")]
            if not part.get("episodes") or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                raise DemaError(f"the evaluation of {self.path} is not valid (episodes {part.get('episodes')}, "
                                f"normalised {part.get('normalized_mean')}); {self.eval_report} was not written")
        write_json(self.eval_report, report)
        return self.eval_report

    def write_identity(self, data: dict) -> None:
        write_json(self.identity, data)

    def read_identity(self) -> dict | None:
        """identity.json, or None for a run made before dema recorded it."""
        return self.read_json(self.identity) if self.identity.is_file() else None

    def add_session(self, step: int) -> None:
        """Record that a training session starts at update `step`: when, from which code, where."""
        from dema import provenance

        sessions = self.read_json(self.provenance)["sessions"] if self.provenance.is_file() else []
        sessions.append({"at": _now(), "commit": provenance.git_commit(), "from_step": step,
                         "versions": provenance.versions(), "machine": provenance.machine()})
        write_json(self.provenance, {"sessions": sessions})

    def save_weights(self, policy, path: Path, step: int, run_id: str = "") -> None:
        """The policy's weights, with the step, the run id and a checksum of the tensors as metadata."""
        from safetensors.torch import save_file

        tensors = {k: v.detach().contiguous().cpu().clone() for k, v in policy.state_dict().items()}
        meta = {"step": str(step), "sha256": _checksum(tensors), **({"run_id": run_id} if run_id else {})}
        try:
            atomic_write(path, lambda p: save_file(tensors, str(p), metadata=meta))
        except Exception as exc:  # a full disk, a read-only folder (safetensors has its own error types)
            raise write_failed(path, exc, f"The previous {path.name}, if any, is kept.") from None

    def truncate_csv(self, path: Path, fieldnames: list[str], last_step: int) -> int:
        """Keep the header and the rows up to `last_step` (rows after it are recomputed on resume);
        damaged rows (a field that is not a number) go too. Returns how many damaged rows there were."""
        good, damaged = self.numeric_rows(path, fieldnames)
        rows = [{k: r.get(k, "") for k in fieldnames} for r in good if float(r["step"]) <= last_step]

        def write(tmp: Path) -> None:
            with tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fieldnames)
                writer.writeheader()
                writer.writerows(rows)

        atomic_write(path, write)
        return damaged

    def append_csv(self, path: Path, fieldnames: list[str], row: dict) -> None:
        with path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=fieldnames).writerow(row)


def _stats_problem(run: LoadedRun) -> str | None:
    """Why the state statistics cannot normalise this run's states, or None: one mean and std per state
    feature (one each for frames, scaled as a whole), finite, std > 0. A length of 1 would broadcast
    over every feature without an error, and a wrong length fail deep inside the first decision."""
    stats = run.stats
    expected = 1 if run.spec.atari else run.state_dim
    sizes = {"state_mean": stats.state_mean.size, "state_std": stats.state_std.size}
    wrong = {name: size for name, size in sizes.items() if size != expected}
    if wrong:
        listed = " and ".join(f"{name} has {size} values" for name, size in wrong.items())
        return f"{listed}, but the run's states have {expected} feature{'s' if expected != 1 else ''}"
    if not (np.isfinite(stats.state_mean).all() and np.isfinite(stats.state_std).all()):
        return "state_mean or state_std holds NaN or inf"
    if not (stats.state_std > 0).all():
        return "state_std holds values <= 0 (every state is divided by it)"
    return None


def _checksum(tensors: dict) -> str:
    """sha256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    import torch

    digest = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _number(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _parses(text) -> bool:
    try:
        float(text)
        return True
    except (TypeError, ValueError):
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
