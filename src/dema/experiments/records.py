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
import math
import os
from pathlib import Path

from dema import provenance
from dema.errors import DemaError
from dema.files import atomic_write
from dema.run import RunDir

SCHEMA = 1


class DamagedRecord(DemaError):
    """A record of this schema whose fields are missing, of the wrong type or contradict each other."""


# what the report says to do about a damaged record (the sweep replaces one by running its cell again)
_DAMAGED_FIX = "left out: `dema sweep` runs its cell again and replaces it, or delete it"


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


# what reading a file or run directory can raise when it is damaged or foreign: ValueError covers
# bad JSON and non-UTF-8 bytes, RecursionError absurdly nested JSON, the rest a record or run
# directory of the wrong shape
DAMAGE = (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError, DemaError)


def read_records(paths: list[str | Path]) -> tuple[list[dict], list[str]]:
    """Records from files, folders of records (recursively) and run directories.

    Returns (records, problems): a file that is not a sound record (unreadable, not UTF-8, bad JSON,
    foreign JSON, fields of the wrong type or contradicting each other) is named in `problems` and
    the rest are read. A run directory is read as its run; its own files never count as records."""
    records, problems = [], []
    for path in map(Path, paths):
        if not path.exists():
            problems.append(f"{path}: no such file or folder")
            continue
        for item in _candidates(path, problems):
            try:
                records.append(record_from_run(item) if item.is_dir() else read_record(item))
            except DAMAGE as exc:
                fix = f"; {_DAMAGED_FIX}" if isinstance(exc, DamagedRecord) else ""
                problems.append(f"{item}: {_reason(exc)}{fix}")
    return records, problems


def read_record(path: Path) -> dict:
    """The record in the file at `path`; DemaError saying what is wrong when it is not a sound one."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))  # dema writes records as ASCII JSON
    except UnicodeDecodeError:
        raise DemaError("not UTF-8 text (damaged bytes?), so not a run record") from None
    except json.JSONDecodeError as exc:
        raise DemaError(f"not valid JSON ({exc}): damaged or cut short") from None
    _check(record)
    return record


def record_problem(path: Path, run: str | None = None) -> str | None:
    """Why the file at `path` is not a sound record (of `run`, when given); None when it is one."""
    try:
        record = read_record(path)
    except DAMAGE as exc:
        return _reason(exc)
    if run is not None and record["run"] != run:
        return f"it is the record of run {record['run']!r}, not {run!r}"
    return None


def _reason(exc: BaseException) -> str:
    """The problem in words: dema's own messages as they are, others with their kind."""
    if isinstance(exc, DemaError):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"damaged: it lacks {exc}"
    return f"damaged ({type(exc).__name__}: {exc})"


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
    from dema.data.episodes import returns_summary
    from dema.data.load import load_training_data
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


# names that are never records, wherever they lie: the sweep's marker of a runs folder, the demo's summary
_NOT_RECORDS = {"grid.json", "demo.json", "eval.json", "config.json", "normalization.json"}
# folders of a results folder that keep other records than runs', each read by its own command: the
# hidden-attention analyses (scripts/analysis_runs.sh; `dema analysis tables`), the runs continued to
# 10,000 updates (`dema continue --from-records`) and the Pong diagnostics (`dema report --pong-diagnostics`)
ANALYSES_FOLDER = "analyses"  # <results>/analyses/<cell>/: what dema.experiments.report.attention reads
OTHER_RECORDS = (ANALYSES_FOLDER, "continued", "diagnostics")


def _candidates(path: Path, problems: list[str]) -> list[Path]:
    """Record files, then finished run directories, at or under `path`. A run directory is one
    candidate: its own JSON files (config.json, identity.json, provenance.json, ...) and its
    subfolders (decay/, surgery/) are what the run is made of, not records; an unfinished one under
    a folder is passed over (it has no score yet), and so are the OTHER_RECORDS folders right under
    `path`. A folder that cannot be listed is a problem."""
    if path.is_file() or _is_run_dir(path):
        return [path]
    if not path.is_dir():
        problems.append(f"{path}: neither a file nor a folder")
        return []
    files, runs = [], []
    on_error = lambda exc: problems.append(f"{exc.filename}: cannot be listed ({exc.strerror})")
    for folder, subfolders, names in os.walk(path, onerror=on_error):
        here = Path(folder)
        if _is_run_dir(here):
            subfolders.clear()  # the run's own subfolders are not searched
            if (here / "eval.json").is_file():
                runs.append(here)
            continue
        subfolders[:] = sorted(s for s in subfolders if here != path or s not in OTHER_RECORDS)
        files += [here / n for n in sorted(names)
                  if n.endswith(".json") and n not in _NOT_RECORDS and (here / n).is_file()]
    return sorted(files) + sorted(runs)


def _is_run_dir(folder: Path) -> bool:
    """A run directory: what `dema train` makes (config.json; eval.json once evaluated)."""
    return (folder / "config.json").is_file() or (folder / "eval.json").is_file()


def _sessions(run: RunDir) -> list[dict] | None:
    """The commit, time and starting update of each training session (provenance.json), if recorded."""
    if not run.provenance.is_file():
        return None
    return [{k: s.get(k) for k in ("at", "commit", "from_step")} for s in run.read_json(run.provenance)["sessions"]]


def _check(record) -> None:
    """DemaError unless `record` is a run record whose fields have their types and agree with each other."""
    if not isinstance(record, dict):
        raise DemaError(f"not a run record (a JSON {type(record).__name__}, not an object)")
    if record.get("schema") != SCHEMA:
        raise DemaError(f"not a run record of schema {SCHEMA} (its schema: {record.get('schema')!r})")
    for key in ("run", "dataset", "model", "seed", "normalized_mean", "config"):
        if key not in record:
            raise DamagedRecord(f"the record lacks {key!r}")
    _check_types(record)
    _check_agreement(record)


# the type of each field a report groups or scores by (an optional one only when present)
_TYPES = {"run": str, "dataset": str, "model": str, "seed": int, "config": dict}
_OPTIONAL_TYPES = {"protocol": str, "grid": str, "variant": dict, "eval": dict}


def _check_types(record: dict) -> None:
    fields = {**_TYPES, **{k: t for k, t in _OPTIONAL_TYPES.items() if record.get(k) is not None}}
    for key, kind in fields.items():
        value = record[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise DamagedRecord(f"its {key} is {_shown(value)}, not a {kind.__name__}")
    if not _finite(record["normalized_mean"]):
        raise DamagedRecord(f"its normalized_mean is not a number: {_shown(record['normalized_mean'])}")


def _check_agreement(record: dict) -> None:
    """The fields a report groups by say what the record's config says, and its score is its
    evaluation's: a record edited by hand or pieced together from two runs would otherwise be
    counted as a run it is not."""
    config = record["config"]
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    dataset = data.get("dataset") if isinstance(data.get("dataset"), str) else None
    expected = {"run": config.get("run_name") or None,  # "" when dema named the run itself
                "model": config.get("model_name"), "seed": config.get("seed"), "protocol": config.get("protocol")}
    for key, value in expected.items():
        if value is not None and key in record and record[key] != value:
            raise DamagedRecord(f"its {key} {_shown(record[key])} contradicts its config's {_shown(value)}")
    # a dataset is named by its label (records.py writes "Pong" for "atari/Pong") or as the config gives it
    if dataset is not None and record["dataset"] not in (dataset, _dataset_label(dataset)):
        raise DamagedRecord(f"its dataset {_shown(record['dataset'])} contradicts its config's {_shown(dataset)}")
    evaluated = (record.get("eval") or {}).get("normalized_mean")
    if evaluated is not None and not (_finite(evaluated) and math.isclose(
            float(evaluated), float(record["normalized_mean"]), rel_tol=1e-9, abs_tol=1e-9)):
        raise DamagedRecord(f"its normalized_mean {record['normalized_mean']!r} contradicts its "
                        f"eval.normalized_mean {_shown(evaluated)}")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _shown(value) -> str:
    """A field's value for a message, cut short (a damaged field may hold anything)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _dataset_label(dataset: str) -> str:
    """The dataset as tables name it: an id stays (a Minari id too: mujoco/hopper/medium-v0), a path
    becomes its file name without suffix."""
    from dema.envs import dataset_name, is_minari_id

    return dataset if is_minari_id(dataset) else dataset_name(dataset)


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
