"""Runs of `dema report`: records read into Runs, grouped by (protocol, dataset, model, variant), and
the per-group tables (scores, flattening of the learning curves, datasets, protocol settings)."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from dema.envs import parse_dataset
from dema.errors import DemaError
from dema.experiments.records import read_records
from dema.models.registry import rank

DOMAIN_LABEL = {"mujoco": "MuJoCo", "atari": "Atari", "maze2d": "maze2d", "other": "other"}


# ----------------------------------------------------------------------------- runs


@dataclass
class Run:
    """The part of a record the report uses, with the protocol read out of its config."""

    run: str
    grid: str | None
    dataset: str
    model: str
    seed: int
    protocol: str
    variant: dict
    final: float
    final_std: float | None
    best_ckpt: float | None
    best_train: float | None
    best_train_step: int | None
    params: int | None
    updates: int | None
    steps: int | None
    wall_seconds: float | None
    train_seconds: float | None
    context_len: int | None
    delayed: bool
    setup: dict  # the protocol row: lr, warm-up, batch, K, evaluation
    identity: dict
    data_returns: dict | None = None  # the dataset's episode returns, raw and normalised (records.returns_summary)
    second_target: float | None = None  # the final weights' normalised score on the second return target
    time_table_params: int = 0  # parameters of a learned timestep table (max_ep_len x embedding), if any
    episodes: int | None = None  # evaluation episodes behind `final`
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, normalised) on the first target
    loss_curve: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss) per log interval
    interval_ms: list[float] = field(default_factory=list)  # mean ms per update of each log interval
    references: str = "table"  # the reference scores `final` is normalised with: "table" (dema's) or "dataset"

    @property
    def variant_key(self) -> str:
        return _variant_key(self.variant)

    @property
    def domain(self) -> str:
        return domain(self.dataset)

    @property
    def ms_per_update(self) -> float | None:
        """The median over log intervals of their mean update time, else train_seconds / steps. The
        median, because a machine paused between sessions counts its pause inside one update (one
        run's interval read 47 s per update, which made its total 4x its real cost)."""
        if self.interval_ms:
            return statistics.median(self.interval_ms)
        if self.train_seconds is None or not self.steps:
            return None
        return 1000.0 * self.train_seconds / self.steps

    @property
    def last_three(self) -> float | None:
        """The mean of the last three periodic evaluations (first target): a score less at the mercy of
        where the final update happened to land than the final weights alone."""
        if len(self.curve) < 3:
            return None
        return statistics.mean(score for _, score in self.curve[-3:])

    def to_json(self) -> dict:
        return {"dataset": self.dataset, "model": self.model, "seed": self.seed, "variant": self.variant,
                "protocol": self.protocol, "grid": self.grid, "run": self.run,
                "normalized_mean": self.final, "normalized_std": self.final_std,
                "best_checkpoint_normalized_mean": self.best_ckpt,
                "best_during_training": self.best_train, "best_during_training_step": self.best_train_step,
                "params": self.params, "updates": self.updates, "wall_seconds": self.wall_seconds,
                "train_seconds": self.train_seconds, "ms_per_update": self.ms_per_update,
                "context_len": self.context_len, "domain": self.domain}


def domain(dataset: str) -> str:
    """mujoco, atari, maze2d or other, from the dataset's name."""
    ref = parse_dataset(dataset)
    if ref.preset is not None and ref.preset.env is None:
        return "atari"
    if ref.env is not None:
        return "maze2d" if ref.env.name.startswith("maze2d") else "mujoco"
    return "other"


def _variant_key(variant: dict) -> str:
    return json.dumps(variant or {}, sort_keys=True)


def variant_text(variant: dict) -> str:
    if not variant:
        return "-"
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(variant.items()))


def _number(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return None if math.isnan(number) else number


def run_from_record(record: dict) -> Run:
    """A Run from a record; KeyError / TypeError / ValueError when the record is damaged."""
    config = record["config"]
    report = record.get("eval") or {}
    training = report.get("training") or {}
    best = record.get("best_during_training") or {}
    metrics = record.get("metrics") or []
    model_cfg, optim, schedule, ev = (config.get(k) or {} for k in ("model", "optim", "schedule", "eval"))
    data = config.get("data") or {}
    targets = list(report.get("targets") or ev.get("targets") or [])
    train_seconds = _number(training.get("train_seconds"))
    if train_seconds is None and metrics:
        train_seconds = _number(metrics[-1].get("train_seconds"))
    steps = training.get("step")
    if steps is None and metrics:
        steps = metrics[-1].get("step")
    try:
        final = _number(record["normalized_mean"])
    except (TypeError, ValueError):
        final = None
    if final is None:
        raise ValueError(f"normalized_mean is not a number: {record['normalized_mean']!r}")
    variant = record.get("variant") or {}
    if not isinstance(variant, dict):
        raise TypeError("variant is not a dict")
    identity = record.get("dataset_identity") or {}
    updates = report.get("updates", schedule.get("updates"))
    return Run(
        run=str(record["run"]), grid=record.get("grid"), dataset=str(record["dataset"]), model=str(record["model"]),
        seed=int(record["seed"]), protocol=str(record.get("protocol") or config.get("protocol") or "?"),
        variant=variant, final=final, final_std=_number(record.get("normalized_std")),
        best_ckpt=_number(record.get("best_checkpoint_normalized_mean")),
        best_train=_number(best.get("normalized_mean")), best_train_step=best.get("step"),
        params=None if record.get("params") is None else int(record["params"]),
        updates=None if updates is None else int(updates), steps=None if steps is None else int(steps),
        wall_seconds=_number(training.get("wall_seconds")), train_seconds=train_seconds,
        context_len=model_cfg.get("context_len"), delayed=bool(variant.get("data.delayed", data.get("delayed", False))),
        setup={"updates": updates, "warmup": optim.get("warmup_steps"), "lr": optim.get("lr"),
               "batch": optim.get("batch_size"), "K": model_cfg.get("context_len"),
               "episodes": report.get("episodes_per_seed", ev.get("episodes")), "targets": targets,
               "eval_seeds": list(report.get("seeds") or ev.get("seeds") or []),
               "eval_every": schedule.get("eval_every"), "train_episodes": ev.get("train_episodes")},
        identity={"path": identity.get("path"), "sha256": _digest_text(identity),
                  "transitions": identity.get("transitions")},
        data_returns=identity.get("returns") if isinstance(identity.get("returns"), dict) else None,
        second_target=_second_target(report), time_table_params=_time_table_params(model_cfg),
        episodes=_episodes(report),
        curve=_curve(record.get("evals") or [], targets),
        loss_curve=sorted((int(m["step"]), float(m["loss"])) for m in metrics
                          if m.get("step") is not None and _number(m.get("loss")) is not None),
        interval_ms=[ms for ms in (_number(m.get("ms_per_step")) for m in metrics) if ms is not None],
        references=str((report.get("reference_scores") or {}).get("source") or "table"),
    )


def _second_target(report: dict) -> float | None:
    """The final evaluation's normalised mean on the second return target, when it had one."""
    per_target = report.get("per_target") or []
    return _number(per_target[1].get("normalized_mean")) if len(per_target) > 1 else None


def _time_table_params(model_cfg: dict) -> int:
    """A learned timestep embedding is a (max_ep_len, embed_dim) table: 27k rows on Atari, most of
    DT's parameters there, and no part of the sequence mixer the paper compares."""
    if not model_cfg.get("position_embedding"):
        return 0
    return int(model_cfg.get("max_ep_len") or 0) * int(model_cfg.get("embed_dim") or 0)


def _episodes(report: dict) -> int | None:
    episodes = report.get("episodes")
    return int(episodes) if isinstance(episodes, (int, float)) and not isinstance(episodes, bool) else None


def _curve(rows: list[dict], targets: list) -> list[tuple[int, float]]:
    """(step, normalised mean) of the periodic evaluations on the first target."""
    rows = [r for r in rows if _number(r.get("normalized_mean")) is not None and r.get("step") is not None]
    if not rows:
        return []
    first = float(targets[0]) if targets else _number(rows[0].get("target"))
    chosen = [r for r in rows if first is None or _number(r.get("target")) in (None, first)]
    return sorted((int(r["step"]), float(r["normalized_mean"])) for r in chosen)


def load_runs(paths: list[str | Path]) -> tuple[list[Run], list[str]]:
    """Runs from records and run directories; (runs, problems). DemaError when none is found."""
    records, problems = read_records(list(paths))
    runs, seen = [], {}
    for record in records:
        name = record.get("run", "?") if isinstance(record, dict) else "?"
        try:
            run = run_from_record(record)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problems.append(f"record {record.get('grid') or ''}/{name}: damaged ({type(exc).__name__}: {exc})")
            continue
        key = (run.protocol, run.dataset, run.model, run.variant_key, run.seed)
        if key in seen:
            problems.append(f"record {run.grid}/{run.run}: the same protocol, dataset, model, variant and seed as "
                            f"{seen[key]}; kept the first one read")
            continue
        seen[key] = f"{run.grid}/{run.run}"
        runs.append(run)
    if not runs:
        searched = ", ".join(str(p) for p in paths)
        extra = f" ({len(problems)} unreadable; first: {problems[0]})" if problems else ""
        raise DemaError(f"no run records found in {searched} (looked for <grid>/<run>.json records and run "
                        f"directories with eval.json){extra}")
    runs.sort(key=lambda r: (r.protocol, r.dataset, *_cell_rank(r.model, r.variant_key), r.seed))
    return runs, problems


def _cell_rank(model: str, variant_key: str) -> tuple:
    """Models in the registry's order, each with its plain run ({}) before its variants."""
    return (*rank(model), variant_key != "{}", variant_key)


# ----------------------------------------------------------------------------- per-group table


def _mean(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def _std(values):
    values = [v for v in values if v is not None]
    return statistics.stdev(values) if len(values) > 1 else None


def group_runs(runs: list[Run]) -> dict[tuple, list[Run]]:
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        groups[(run.protocol, run.dataset, run.model, run.variant_key)].append(run)
    return dict(groups)


def summaries(runs: list[Run]) -> list[dict]:
    """One row per (protocol, dataset, model, variant)."""
    out = []
    for (protocol, dataset, model, _), group in group_runs(runs).items():
        params = sorted({r.params for r in group if r.params is not None})
        out.append({
            "protocol": protocol, "dataset": dataset, "model": model, "variant": group[0].variant,
            "seeds": [r.seed for r in group],
            "final_mean": _mean(r.final for r in group), "final_std": _std(r.final for r in group),
            "best_checkpoint_mean": _mean(r.best_ckpt for r in group),
            "best_checkpoint_std": _std(r.best_ckpt for r in group),
            "best_during_training_mean": _mean(r.best_train for r in group),
            "best_during_training_std": _std(r.best_train for r in group),
            "params": params, "updates": sorted({r.updates for r in group if r.updates is not None}),
            "wall_seconds_mean": _mean(r.wall_seconds for r in group),
            "ms_per_update_mean": _mean(r.ms_per_update for r in group),
        })
    return out


def _digest_text(identity: dict) -> str | None:
    """The dataset digest's first 12 hex digits and what it is a digest of: "file" (the file's bytes;
    runs made before identity.json) or "arrays" (the arrays training reads). The same data has one of
    each, so the kind is shown to keep two digests of one file from reading as two datasets."""
    digest = identity.get("sha256")
    if not digest:
        return None
    kind = identity.get("sha256_of")
    return digest[:12] + (f" ({kind})" if kind else "")


def flattening(runs: list[Run]) -> list[dict]:
    """Have the learning curves flattened by the end of training? Per (protocol, dataset, model, variant):

    - loss: the relative drop of the training loss over the second half of training (mean of the last
      10% of log intervals against the mean of the 10% around the half-way point), mean over seeds;
    - score: the least-squares slope of the periodic evaluation scores over the second half of
      training (all seeds' points pooled), in normalised points per 1,000 updates, with a 95% interval
      (t quantile); "flat" when that interval contains 0, "rising" / "falling" when it lies above / below.
    """
    out = []
    for (protocol, dataset, model, vkey), group in sorted(group_runs(runs).items(), key=lambda kv: kv[0]):
        drops = [d for d in (_late_loss_drop(r.loss_curve) for r in group) if d is not None]
        points = [(s, v) for r in group if r.curve for s, v in r.curve if s > max(x for x, _ in r.curve) / 2]
        slope, half_width = _slope(points)
        trend = None
        if slope is not None and half_width is not None:
            trend = "flat" if abs(slope) <= half_width else ("rising" if slope > 0 else "falling")
        out.append({"protocol": protocol, "dataset": dataset, "model": model, "variant": group[0].variant,
                    "seeds": len(group), "loss_drop_second_half": _mean(drops) if drops else None,
                    "score_slope_per_1k": slope, "score_slope_ci95_half_width": half_width,
                    "score_points": len(points), "score_trend": trend})
    return out


LOSS_STILL_FALLING = 0.05  # a loss that fell by more than 5% over the second half has not flattened


def flattening_summary(rows: list[dict]) -> dict:
    """What the flattening rows say together: how many groups have a flat / rising / falling score, how
    wide the slope intervals are (a "flat" slope of +-W cannot rule out a rise of W per 1k updates), and
    how many groups' loss still fell by more than LOSS_STILL_FALLING over the second half."""
    trends = [r["score_trend"] for r in rows if r["score_trend"]]
    widths = [r["score_slope_ci95_half_width"] for r in rows if r["score_slope_ci95_half_width"] is not None]
    drops = [r["loss_drop_second_half"] for r in rows if r["loss_drop_second_half"] is not None]
    return {"groups": len(rows), "flat": trends.count("flat"), "rising": trends.count("rising"),
            "falling": trends.count("falling"),
            "median_slope_half_width": statistics.median(widths) if widths else None,
            "loss_still_falling": sum(d > LOSS_STILL_FALLING for d in drops), "loss_groups": len(drops),
            "median_loss_drop": statistics.median(drops) if drops else None}


def _late_loss_drop(curve: list[tuple[int, float]]) -> float | None:
    if len(curve) < 10:
        return None
    losses = [loss for _, loss in curve]
    tenth = max(1, len(losses) // 10)
    mid = len(losses) // 2
    at_half = statistics.mean(losses[mid - tenth // 2: mid - tenth // 2 + tenth])
    at_end = statistics.mean(losses[-tenth:])
    return (at_half - at_end) / at_half if at_half else None


def _slope(points: list[tuple[int, float]]) -> tuple[float | None, float | None]:
    """Least-squares slope (per 1,000 updates) and the half width of its 95% interval."""
    if len(points) < 3 or len({s for s, _ in points}) < 2:
        return None, None
    from scipy import stats

    fit = stats.linregress([s / 1000 for s, _ in points], [v for _, v in points])
    return float(fit.slope), float(stats.t.ppf(0.975, len(points) - 2) * fit.stderr)


# ----------------------------------------------------------------------------- protocol table


def dataset_rows(runs: list[Run]) -> list[dict]:
    """One row per dataset: its size and its episodes' returns (raw and normalised), from the first
    record that carries them; datasets whose records all lack them are listed with None."""
    rows: dict[str, dict] = {}
    for run in sorted(runs, key=lambda r: (r.dataset, r.data_returns is None)):
        if run.dataset in rows:
            continue
        rows[run.dataset] = {"dataset": run.dataset, "domain": run.domain,
                             "transitions": run.identity.get("transitions"), "returns": run.data_returns}
    return list(rows.values())


def protocol_rows(runs: list[Run]) -> list[dict]:
    """Runs grouped by identical protocol settings and dataset identity."""
    rows: dict[str, dict] = {}
    for run in runs:
        setting = {"protocol": run.protocol, "dataset": run.dataset, **run.setup, **run.identity}
        key = json.dumps(setting, sort_keys=True, default=str)
        row = rows.setdefault(key, {**setting, "models": [], "seeds": set(), "runs": 0})
        if run.model not in row["models"]:
            row["models"].append(run.model)
        row["seeds"].add(run.seed)
        row["runs"] += 1
    return [{**r, "seeds": sorted(r["seeds"])} for r in rows.values()]
