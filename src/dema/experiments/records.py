"""Run records: one small JSON file per finished run, the unit results accumulate in.

A record holds what a report needs and nothing heavy (no weights): the resolved config, the final
evaluation (eval.json), the learning curve (evals.csv and metrics.csv rows), the dataset's
identity and the provenance (code commit, package versions, machine). Records are written into
`results/<grid>/<run>.json` in the repository by `dema sweep`, so results made on different
machines and in different sessions add up; `dema report` reads them (and run directories).

    {"schema": 1, "run": "hopper-medium_dema_cpu-main_s0", "grid": "mujoco-main",
     "dataset": "hopper-medium", "model": "dema", "seed": 0, "protocol": "cpu-main",
     "variant": {"model.context_len": 8},            # the grid's sweep values of this cell ({} if none)
     "normalized_mean": 96.7, "normalized_std": 23.3, # final weights, first target
     "best_checkpoint_normalized_mean": ..., "best_during_training": {...},
     "config": {...}, "eval": {...}, "evals": [...], "metrics": [...],
     "dataset_identity": {"path", "bytes", "sha256", "transitions", "episodes",
                          "returns": {"return_mean", ..., "normalized_return_mean", ...}},
     "provenance": {"recorded_at", "recorded_by_commit", "training_sessions": [{"at", "commit", "from_step"}],
                    "versions"}}
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from dema import provenance
from dema.errors import DemaError
from dema.files import atomic_write
from dema.run import RunDir

SCHEMA = 1


def record_from_run(run_dir: str | Path, grid: str | None = None, variant: dict | None = None) -> dict:
    """The record of a finished run directory (one with eval.json)."""
    run = RunDir(run_dir)
    if not run.eval_report.is_file():
        raise DemaError(f"{run.path} has no eval.json: the run has not finished (resume it, or `dema eval` it)")
    config = run.read_json(run.config)
    report = run.read_json(run.eval_report)
    norm = run.read_json(run.normalization)
    best = report.get("best_checkpoint") or {}
    return {
        "schema": SCHEMA,
        "run": run.path.name,
        "grid": grid,
        "dataset": _dataset_label(config["data"]["dataset"]),
        "model": config["model_name"],
        "seed": config["seed"],
        "protocol": config["protocol"],
        "variant": variant or {},
        "normalized_mean": report["normalized_mean"],
        "normalized_std": report["normalized_std"],
        "best_checkpoint_normalized_mean": best.get("normalized_mean"),
        "best_during_training": report.get("best_during_training"),
        "params": report.get("params"),
        "config": config,
        "eval": {k: v for k, v in report.items() if k != "versions"},
        "evals": [_numbers(r) for r in run.rows(run.evals)],
        "metrics": [_numbers(r) for r in run.rows(run.metrics)],
        "dataset_identity": _with_returns(_recorded_identity(run) or dataset_identity(
            norm.get("dataset_source") or config["data"]["dataset"], norm), config, norm),
        "provenance": {"recorded_at": _now(), "recorded_by_commit": provenance.git_commit(),
                       "training_sessions": _sessions(run), "versions": report.get("versions")},
    }


def record_path(results_dir: str | Path, grid: str | None, run: str) -> Path:
    """Where the record of `run` of `grid` lives: results_dir/<grid or "runs">/<run>.json."""
    return Path(results_dir) / (grid or "runs") / f"{run}.json"


def write_record(record: dict, results_dir: str | Path) -> Path:
    """results_dir/<grid or "runs">/<run>.json, written atomically. A record that says the same
    apart from when and by which commit it was written is left as it is, so a sweep passing over
    a finished cell keeps the provenance of the session that recorded it."""
    path = record_path(results_dir, record.get("grid"), record["run"])
    path.parent.mkdir(parents=True, exist_ok=True)
    if _same_content(path, record):
        return path
    atomic_write(path, lambda p: p.write_text(json.dumps(record, indent=1) + "\n"))
    return path


def _same_content(path: Path, record: dict) -> bool:
    """Whether the record at path (if readable) equals `record` up to recorded_at / recorded_by_commit."""
    try:
        existing = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False

    def content(r: dict) -> str:
        stamp = {k: v for k, v in r.get("provenance", {}).items() if k not in ("recorded_at", "recorded_by_commit")}
        return json.dumps({**r, "provenance": stamp}, sort_keys=True)

    return isinstance(existing, dict) and content(existing) == content(json.loads(json.dumps(record)))


def read_records(paths: list[str | Path]) -> tuple[list[dict], list[str]]:
    """Records from files, folders of records (recursively) and run directories.

    Returns (records, problems): a damaged file is named in `problems` and the rest are read."""
    records, problems = [], []
    for path in map(Path, paths):
        if not path.exists():
            problems.append(f"{path}: no such file or folder")
            continue
        for item in _candidates(path):
            try:
                if item.is_dir():
                    records.append(record_from_run(item))
                else:
                    record = json.loads(item.read_text())
                    _check(record, item)
                    records.append(record)
            except (OSError, json.JSONDecodeError, KeyError, TypeError, DemaError) as exc:
                problems.append(f"{item}: {exc}")
    return records, problems


def _recorded_identity(run: RunDir) -> dict | None:
    """The identity the run recorded when it started (identity.json): sha256 of the arrays."""
    identity = run.read_identity()
    if not identity or "dataset" not in identity:
        return None
    return {**identity["dataset"], "sha256_of": "arrays", "run_id": identity.get("run_id")}


def _with_returns(identity: dict, config: dict, norm: dict) -> dict:
    """The identity with the episode returns of the data (raw and normalised). Runs started before
    dema recorded them in identity.json get them by reading the data again, when it is on this
    machine and has the run's transition count; otherwise the identity is left without them."""
    if "returns" in identity:
        return identity
    from dema.atari.data import load_training_data
    from dema.data.episodes import returns_summary
    from dema.envs import env_spec

    data = config.get("data") or {}
    try:
        dataset = load_training_data(norm.get("dataset_source") or data["dataset"], data.get("max_transitions", 0),
                                     config.get("seed", 0))
        spec = env_spec(norm["env"])
    except (DemaError, OSError, KeyError):
        return identity
    if identity.get("transitions") not in (None, len(dataset)):
        return identity
    return {**identity, "returns": returns_summary(dataset.episode_returns(), spec.normalize)}


def dataset_identity(source: str, norm: dict) -> dict:
    """Path, size and sha256 of the dataset file (None when it is not a file here), for runs made
    before dema recorded identity.json."""
    path = Path(source)
    out = {"path": str(source), "transitions": norm.get("transitions"), "episodes": norm.get("episodes"),
           "bytes": None, "sha256": None}
    if path.is_file():
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        out.update(bytes=path.stat().st_size, sha256=digest.hexdigest(), sha256_of="file")
    return out


def _candidates(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if (path / "eval.json").is_file():
        return [path]
    found = sorted(p for p in path.rglob("*.json") if p.name not in ("eval.json", "config.json",
                                                                      "normalization.json", "grid.json", "demo.json"))
    found += sorted(p.parent for p in path.rglob("eval.json"))
    return found


def _sessions(run: RunDir) -> list[dict] | None:
    """The commit, time and starting update of each training session (provenance.json), if recorded."""
    if not run.provenance.is_file():
        return None
    return [{k: s.get(k) for k in ("at", "commit", "from_step")} for s in run.read_json(run.provenance)["sessions"]]


def _check(record: dict, path: Path) -> None:
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise DemaError(f"not a run record of schema {SCHEMA}")
    for key in ("run", "dataset", "model", "seed", "normalized_mean", "config"):
        if key not in record:
            raise DemaError(f"the record lacks {key!r}")


def _dataset_label(dataset: str) -> str:
    """The dataset as tables name it: an id stays, a path becomes its file name without suffix."""
    from dema.envs import dataset_name

    return dataset_name(dataset)


def _numbers(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        try:
            number = float(value)
            out[key] = int(number) if key in ("step", "episodes") else number
        except (TypeError, ValueError):
            out[key] = value
    return out


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
