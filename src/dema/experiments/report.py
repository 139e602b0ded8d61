"""`dema report`: tables, aggregates, figures and the paper's claims with verdicts, from run records.

Everything is computed from run records (`dema.experiments.records`: `results/<grid>/<run>.json`,
or run directories); nothing is typed in by hand except the reference scores of other papers
(`REFERENCES`, each with its source), which are shown beside ours as context only.

- Runs are grouped by (protocol, dataset, model, variant): seeds, normalised score mean and std
  over seeds of the final weights, of the best checkpoint re-evaluated, and of the best evaluation
  during training; parameters, updates, wall time.
- Aggregates: per model, the IQM and the mean of normalised scores across datasets with
  stratified-bootstrap 95% intervals (rliable), over the tasks on which every compared model has
  the same seeds.
- Claims: each claim of the paper gets a verdict by ONE rule (`RULE`): runs are paired by
  (protocol, dataset, seed, the rest of the variant), the mean paired difference A - B of final
  normalised scores is bootstrapped (10,000 resamples, fixed seed) and its 95% interval decides.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dema.envs import parse_dataset
from dema.errors import DemaError
from dema.experiments.records import read_records

MODEL_ORDER = ("dema", "dt", "dt-shared", "dema-bl3d", "dema-post", "dema-rnn", "dc", "bc", "dema-official",
               "dt-official")
LABEL = {"dema": "DeMa", "dt": "DT", "dt-shared": "DT (DeMa's token order)", "dema-bl3d": "DeMa-BL3D",
         "dema-post": "DeMa-post", "dema-rnn": "DeMa-RNN", "dc": "DC", "bc": "BC",
         "dema-official": "DeMa (official code's choices)", "dt-official": "DT (official init)"}
DOMAIN_LABEL = {"mujoco": "MuJoCo", "atari": "Atari", "maze2d": "maze2d", "other": "other"}

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
MARGIN = 5.0  # equivalence margin of ">=" and "not needed" claims, in normalised points
MIN_PAIRS = 3  # fewer paired runs than this: "inconclusive" whatever the interval
SHORT_K = 30  # "short K": the context lengths trajectory optimisation uses (8-20 MuJoCo, 30 Atari)
PAPER_UPDATES = 100_000  # MuJoCo: 10 x 10k
PAPER_ATARI_UPDATES = 625_000  # Atari: 10 epochs of DT's 1% data at batch 8 (docs/RESULTS.md)
PARAM_BOUNDS = {"mujoco": (0.30, "about a quarter of DT's parameters"),
                "atari": (0.75, "about 70% of DT's parameters (30% fewer)")}

RULE = (
    f"Runs A and B are paired by (protocol, dataset, seed, the rest of the variant). The mean paired "
    f"difference A - B of the final normalised scores (final weights, first return target) is bootstrapped "
    f"over the pairs ({BOOTSTRAP_RESAMPLES:,} resamples, numpy seed {BOOTSTRAP_SEED}, percentile 95% interval). "
    f"A claim that A beats B is \"supported\" if the interval lies above 0 and \"not supported\" if it lies "
    f"entirely below 0. A claim that A >= B (or that B's addition is \"not needed\") uses an equivalence "
    f"margin of {MARGIN:g} normalised points: \"supported\" if the interval's lower end is above -{MARGIN:g}, "
    f"\"not supported\" if its upper end is below -{MARGIN:g}. Anything else is \"inconclusive\", and so is "
    f"a claim with fewer than {MIN_PAIRS} pairs; a claim with no pairs is \"no data\", saying what is missing. "
    f"Runs with delayed rewards or an added position embedding enter only the claims about those. "
    f"Parameter claims compare `params` of the records: \"supported\" if DeMa / DT is within the stated bound "
    f"on every dataset, \"not supported\" if on none, \"partly supported\" otherwise."
)


# ----------------------------------------------------------------------------- reference numbers


@dataclass(frozen=True)
class Reference:
    dataset: str  # as parse_dataset(...).base spells it: "hopper-medium", "breakout", "maze2d-umaze"
    figure: str  # "DT paper", "CORL DT final", "CORL DT best", ...
    value: float  # normalised score (D4RL-normalised; gamer-normalised on Atari)
    source: str


_DT = ("Chen et al., Decision Transformer, NeurIPS 2021 (arXiv 2106.01345), Table 2: "
       "D4RL v2 gym datasets, 3 seeds")
_DT_ATARI = ("Chen et al., Decision Transformer, NeurIPS 2021 (arXiv 2106.01345), Table 1: "
             "Atari 1% DQN-replay, gamer-normalised, 3 seeds")
_CORL = ("Tarasov et al., CORL: Research-oriented Deep Offline RL Library, NeurIPS 2023 D&B "
         "(arXiv 2210.07105), DT on D4RL v2 gym: score of the last weights (final) and best over training")
_CORL_MAZE = ("Tarasov et al., CORL (arXiv 2210.07105), DT on D4RL maze2d v1: last weights (final) "
              "and best over training")


def _refs(figure: str, source: str, values: dict[str, float]) -> list[Reference]:
    return [Reference(dataset, figure, value, source) for dataset, value in values.items()]


# The ONE table of reference scores that exist as text (other papers' data, not ours).
REFERENCES: tuple[Reference, ...] = tuple(
    _refs("DT paper", _DT, {
        "halfcheetah-medium": 42.6, "hopper-medium": 67.6, "walker2d-medium": 74.0,
        "halfcheetah-medium-replay": 36.6, "hopper-medium-replay": 82.7, "walker2d-medium-replay": 66.6,
        "halfcheetah-medium-expert": 86.8, "hopper-medium-expert": 107.6, "walker2d-medium-expert": 108.1})
    + _refs("CORL DT final", _CORL, {
        "halfcheetah-medium": 42.20, "hopper-medium": 65.10, "walker2d-medium": 67.63,
        "halfcheetah-medium-replay": 38.91, "hopper-medium-replay": 81.77, "walker2d-medium-replay": 59.86,
        "halfcheetah-medium-expert": 91.55, "hopper-medium-expert": 110.44, "walker2d-medium-expert": 107.11})
    + _refs("CORL DT best", _CORL, {
        "halfcheetah-medium": 42.73, "hopper-medium": 69.42, "walker2d-medium": 74.70,
        "halfcheetah-medium-replay": 40.31, "hopper-medium-replay": 88.74, "walker2d-medium-replay": 68.22,
        "halfcheetah-medium-expert": 93.40, "hopper-medium-expert": 111.18, "walker2d-medium-expert": 108.71})
    + _refs("DT paper (Atari)", _DT_ATARI, {"breakout": 267.5, "qbert": 15.4, "pong": 106.1, "seaquest": 2.5})
    + _refs("CORL DT final", _CORL_MAZE, {"maze2d-umaze": 18.08, "maze2d-medium": 31.71, "maze2d-large": 35.66})
    + _refs("CORL DT best", _CORL_MAZE, {"maze2d-umaze": 63.83, "maze2d-medium": 68.14, "maze2d-large": 50.25})
)


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
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, normalised) on the first target
    loss_curve: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss) per log interval

    @property
    def variant_key(self) -> str:
        return _variant_key(self.variant)

    @property
    def domain(self) -> str:
        return domain(self.dataset)

    @property
    def ms_per_update(self) -> float | None:
        if self.train_seconds is None or not self.steps:
            return None
        return 1000.0 * self.train_seconds / self.steps

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
        identity={"path": identity.get("path"), "sha256": (identity.get("sha256") or "")[:12] or None,
                  "transitions": identity.get("transitions")},
        data_returns=identity.get("returns") if isinstance(identity.get("returns"), dict) else None,
        curve=_curve(record.get("evals") or [], targets),
        loss_curve=sorted((int(m["step"]), float(m["loss"])) for m in metrics
                          if m.get("step") is not None and _number(m.get("loss")) is not None),
    )


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


def _model_rank(model: str) -> tuple[int, str]:
    return (MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER), model)


def _cell_rank(model: str, variant_key: str) -> tuple:
    """Models in MODEL_ORDER, each with its plain run ({}) before its variants."""
    return (*_model_rank(model), variant_key != "{}", variant_key)


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


# ----------------------------------------------------------------------------- aggregates (rliable)


def _rliable():
    try:
        from rliable import library, metrics
    except ImportError as exc:
        raise DemaError(f"`dema report` needs rliable for its interval estimates ({exc}); install it with "
                        f"pip install -e \".[sweep]\"") from None
    return library, metrics


def aggregates(runs: list[Run]) -> list[dict]:
    """Per (protocol, domain, variant) and model: IQM and mean across datasets, stratified-bootstrap 95% CIs.

    The (runs x tasks) matrix of each model holds the tasks (datasets) on which every compared model
    has the same seeds; a model that would leave no such task is left out of the comparison (named)."""
    cells: dict[tuple, dict[str, dict[str, dict[int, float]]]] = defaultdict(lambda: defaultdict(dict))
    for run in runs:
        cells[(run.protocol, run.domain, run.variant_key)][run.model].setdefault(run.dataset, {})[run.seed] = run.final
    out = []
    for (protocol, dom, vkey), by_model in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != "{}", kv[0][2])):
        models = sorted(by_model, key=_model_rank)
        left_out = []
        while True:
            tasks = _common_tasks({m: by_model[m] for m in models})
            if tasks or len(models) <= 1:
                break
            drop = max(models, key=lambda m: (-len(by_model[m]), _model_rank(m)))  # fewest datasets, then last
            models.remove(drop)
            left_out.append(drop)
        if not tasks:
            continue
        n_runs = min(len(seeds) for seeds in tasks.values())  # tasks with more seeds use their lowest n_runs
        matrices = {m: np.array([[by_model[m][t][sorted(tasks[t])[i]] for t in sorted(tasks)]
                                 for i in range(n_runs)]) for m in models}
        library, metrics = _rliable()
        aggregate = lambda x, m=metrics: np.array([m.aggregate_iqm(x), m.aggregate_mean(x)])
        with warnings.catch_warnings():  # arch (under rliable 1.2) deprecates the random_state rliable passes
            warnings.simplefilter("ignore", FutureWarning)
            point, interval = library.get_interval_estimates(
                matrices, aggregate,
                reps=BOOTSTRAP_RESAMPLES, random_state=np.random.RandomState(BOOTSTRAP_SEED))
        for m in models:
            out.append({"protocol": protocol, "domain": dom, "variant": json.loads(vkey), "model": m,
                        "tasks": sorted(tasks), "runs_per_task": n_runs,
                        "iqm": float(point[m][0]), "iqm_ci95": [float(interval[m][0][0]), float(interval[m][1][0])],
                        "mean": float(point[m][1]),
                        "mean_ci95": [float(interval[m][0][1]), float(interval[m][1][1])],
                        "compared_with": [x for x in models if x != m], "left_out": left_out})
    return out


def _common_tasks(by_model: dict[str, dict[str, dict[int, float]]]) -> dict[str, set[int]]:
    """Datasets where every model has runs, all with the same seeds -> those seeds."""
    datasets = set.intersection(*(set(d) for d in by_model.values())) if by_model else set()
    tasks = {}
    for dataset in datasets:
        seed_sets = {frozenset(by_model[m][dataset]) for m in by_model}
        if len(seed_sets) == 1:
            tasks[dataset] = set(next(iter(seed_sets)))
    return tasks


# ----------------------------------------------------------------------------- claims


def paired_bootstrap(diffs) -> tuple[float, float, float]:
    """(mean, low, high): percentile 95% interval of the mean paired difference."""
    diffs = np.asarray(diffs, dtype=float)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = diffs[rng.integers(0, len(diffs), size=(BOOTSTRAP_RESAMPLES, len(diffs)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diffs.mean()), float(low), float(high)


def verdict_of(low: float, high: float, kind: str, n: int) -> str:
    """kind "beats": threshold 0; kind "at_least": threshold -MARGIN (see RULE)."""
    if n < MIN_PAIRS:
        return "inconclusive"
    threshold = 0.0 if kind == "beats" else -MARGIN
    if low > threshold:
        return "supported"
    if high < threshold:
        return "not supported"
    return "inconclusive"


def _without(variant: dict, key: str) -> str:
    return _variant_key({k: v for k, v in variant.items() if k != key})


def _standard(run: Run) -> bool:
    """Not one of the settings other claims vary (delayed rewards, an added position embedding)."""
    return not run.delayed and run.variant.get("model.position_embedding") is not True


def _pairs(runs: list[Run], is_a, is_b, key_of) -> list[tuple[Run, Run]]:
    a_runs = {key_of(r): r for r in runs if is_a(r)}
    b_runs = {key_of(r): r for r in runs if is_b(r)}
    return [(a_runs[k], b_runs[k]) for k in sorted(a_runs, key=str) if k in b_runs]


def _pair_key(run: Run, drop: str | None = None) -> tuple:
    return (run.protocol, run.dataset, run.seed, _without(run.variant, drop) if drop else run.variant_key)


def _evidence(diffs: list[float], labels: list[tuple[str, str]], kind: str, extra: dict | None = None) -> tuple[str, dict]:
    mean, low, high = paired_bootstrap(diffs)
    per_dataset = defaultdict(list)
    for (protocol, dataset), d in zip(labels, diffs):
        per_dataset[dataset].append(d)
    evidence = {"pairs": len(diffs), "datasets": sorted(per_dataset), "protocols": sorted({p for p, _ in labels}),
                "mean_difference": round(mean, 3), "ci95": [round(low, 3), round(high, 3)],
                "per_dataset_mean_difference": {d: round(statistics.mean(v), 3) for d, v in sorted(per_dataset.items())},
                "test": "A - B > 0" if kind == "beats" else f"A - B >= -{MARGIN:g} (equivalence margin)"}
    if len(diffs) < MIN_PAIRS:
        evidence["note"] = f"fewer than {MIN_PAIRS} pairs"
    evidence.update(extra or {})
    return verdict_of(low, high, kind, len(diffs)), evidence


def _side_stats(pairs: list[tuple[Run, Run]]) -> dict:
    out = {}
    for side, idx in (("a", 0), ("b", 1)):
        out[f"{side}_final_mean"] = _round(_mean(p[idx].final for p in pairs))
        out[f"{side}_params_mean"] = _round(_mean(p[idx].params for p in pairs), 0)
        out[f"{side}_ms_per_update_mean"] = _round(_mean(p[idx].ms_per_update for p in pairs), 2)
    return out


def _round(value, digits=3):
    if value is None:
        return None
    return round(value) if digits == 0 else round(value, digits)


def _missing(runs: list[Run], a_desc: str, b_desc: str, is_a, is_b, scope: str) -> dict:
    has_a, has_b = any(map(is_a, runs)), any(map(is_b, runs))
    if not has_a and not has_b:
        text = f"no runs of {a_desc} nor of {b_desc}{scope}"
    elif not has_a:
        text = f"no runs of {a_desc}{scope}"
    elif not has_b:
        text = f"no runs of {b_desc}{scope}"
    else:
        text = f"runs of {a_desc} and of {b_desc}{scope} exist but share no (protocol, dataset, seed, variant)"
    return {"pairs": 0, "missing": text}


def _pairwise_claim(runs, claim, a_desc, b_desc, is_a, is_b, kind, key_of=_pair_key, scope="") -> dict:
    pairs = _pairs(runs, is_a, is_b, key_of)
    if not pairs:
        return {"claim": claim, "verdict": "no data",
                "evidence": {"a": a_desc, "b": b_desc, **_missing(runs, a_desc, b_desc, is_a, is_b, scope)}}
    verdict, evidence = _evidence([a.final - b.final for a, b in pairs], [(a.protocol, a.dataset) for a, _ in pairs],
                                  kind, {"a": a_desc, "b": b_desc, **_side_stats(pairs)})
    return {"claim": claim, "verdict": verdict, "evidence": evidence}


def _params_claim(runs: list[Run], dom: str) -> dict:
    bound, words = PARAM_BOUNDS[dom]
    claim = f"DeMa has {words} on {DOMAIN_LABEL[dom]} (DeMa / DT <= {bound:g})"
    ratios: dict[str, list[float]] = defaultdict(list)
    pick = lambda m: lambda r: r.model == m and r.domain == dom and _standard(r) and r.params
    for a, b in _pairs(runs, pick("dema"), pick("dt"), _pair_key):
        ratios[a.dataset].append(a.params / b.params)
    if not ratios:
        return {"claim": claim, "verdict": "no data",
                "evidence": {"pairs": 0, "missing": f"no {DOMAIN_LABEL[dom]} runs of both dema and dt with params"}}
    per_dataset = {d: round(statistics.mean(v), 3) for d, v in sorted(ratios.items())}
    within = [d for d, r in per_dataset.items() if r <= bound]
    verdict = ("supported" if len(within) == len(per_dataset) else "not supported" if not within
               else "partly supported")
    return {"claim": claim, "verdict": verdict,
            "evidence": {"pairs": sum(map(len, ratios.values())), "datasets": sorted(per_dataset),
                         "params_ratio_dema_over_dt": per_dataset, "bound": bound, "within_bound": within}}


def _delayed_claim(runs: list[Run]) -> dict:
    claim = "DeMa is less hurt by delayed rewards than DT (drop of DT - drop of DeMa > 0)"
    cells: dict[tuple, dict[tuple[str, bool], Run]] = defaultdict(dict)
    for run in runs:
        if run.model in ("dema", "dt") and run.variant.get("model.position_embedding") is not True:
            cells[_pair_key(run, "data.delayed")][(run.model, run.delayed)] = run
    complete = [(k, c) for k, c in sorted(cells.items(), key=lambda kv: str(kv[0])) if len(c) == 4]
    if not complete:
        has_delayed = {m for c in cells.values() for (m, d) in c if d}
        missing = ("no runs with the variant {\"data.delayed\": true}" if not has_delayed else
                   f"delayed runs exist only for {sorted(has_delayed)}; each (protocol, dataset, seed) needs "
                   f"dema and dt with and without delayed rewards")
        return {"claim": claim, "verdict": "no data", "evidence": {"pairs": 0, "missing": missing}}
    drops = {m: [c[(m, False)].final - c[(m, True)].final for _, c in complete] for m in ("dema", "dt")}
    diffs = [dt - de for dt, de in zip(drops["dt"], drops["dema"])]
    verdict, evidence = _evidence(diffs, [(k[0], k[1]) for k, _ in complete], "beats", {
        "a": "drop of dt (standard - delayed)", "b": "drop of dema (standard - delayed)",
        "dema_drop_mean": round(statistics.mean(drops["dema"]), 3), "dt_drop_mean": round(statistics.mean(drops["dt"]), 3)})
    return {"claim": claim, "verdict": verdict, "evidence": evidence}


def _context_claim(runs: list[Run]) -> dict:
    claim = f"The best context length K is short: the best K <= {SHORT_K} >= the best K > {SHORT_K} (DeMa)"
    cells: dict[tuple, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))  # (prot, ds, rest) -> K -> seed
    for run in runs:
        if run.model == "dema" and _standard(run) and run.context_len is not None:
            rest = _without(run.variant, "model.context_len")
            cells[(run.protocol, run.dataset, rest)][int(run.context_len)][run.seed] = run.final
    best_k, diffs, labels = {}, [], []
    for (protocol, dataset, rest), by_k in sorted(cells.items()):
        if len(by_k) < 2:
            continue
        means = {k: statistics.mean(v.values()) for k, v in by_k.items()}
        best_k[dataset] = {"best_K": max(means, key=means.get), "mean_by_K": {str(k): round(v, 3) for k, v in sorted(means.items())}}
        short = [k for k in means if k <= SHORT_K]
        long = [k for k in means if k > SHORT_K]
        if not short or not long:
            continue
        ks, kl = max(short, key=means.get), max(long, key=means.get)
        for seed in sorted(set(by_k[ks]) & set(by_k[kl])):
            diffs.append(by_k[ks][seed] - by_k[kl][seed])
            labels.append((protocol, dataset))
    if not diffs:
        missing = ("no dataset with DeMa runs at two or more K (variant \"model.context_len\")" if not best_k else
                   f"no sweep has both a K <= {SHORT_K} and a K > {SHORT_K} with the same seeds")
        return {"claim": claim, "verdict": "no data", "evidence": {"pairs": 0, "missing": missing, "by_dataset": best_k}}
    verdict, evidence = _evidence(diffs, labels, "at_least", {"a": f"dema at its best K <= {SHORT_K}",
                                                             "b": f"dema at its best K > {SHORT_K}", "by_dataset": best_k})
    return {"claim": claim, "verdict": verdict, "evidence": evidence}


def claims(runs: list[Run]) -> list[dict]:
    """Every claim of the paper, each with a verdict and its evidence (see RULE)."""
    std = lambda model, dom=None: (lambda r: r.model == model and _standard(r) and (dom is None or r.domain == dom))
    out = [
        _pairwise_claim(runs, "DeMa >= DT on MuJoCo", "dema", "dt", std("dema", "mujoco"), std("dt", "mujoco"),
                        "at_least", scope=" on MuJoCo"),
        _params_claim(runs, "mujoco"),
        _pairwise_claim(runs, "DeMa >= DT on Atari", "dema", "dt", std("dema", "atari"), std("dt", "atari"),
                        "at_least", scope=" on Atari"),
        _params_claim(runs, "atari"),
        _pairwise_claim(runs, f"Transformer-like DeMa beats RNN-like DeMa at short K (K <= {SHORT_K})",
                        f"dema (K <= {SHORT_K})", "dema-rnn",
                        lambda r: std("dema")(r) and r.context_len is not None and r.context_len <= SHORT_K,
                        std("dema-rnn"), "beats"),
        _pairwise_claim(runs, "B3LD (dema) beats BL3D (dema-bl3d)", "dema", "dema-bl3d", std("dema"),
                        std("dema-bl3d"), "beats"),
        _pairwise_claim(runs, "No position embedding is needed: DeMa without one >= DeMa with one",
                        "dema", "dema with {\"model.position_embedding\": true}",
                        lambda r: r.model == "dema" and not r.delayed and not r.variant.get("model.position_embedding"),
                        lambda r: r.model == "dema" and not r.delayed and r.variant.get("model.position_embedding") is True,
                        "at_least", key_of=lambda r: _pair_key(r, "model.position_embedding")),
        _pairwise_claim(runs, "Pre up-projection (dema) >= post up-projection (dema-post)", "dema", "dema-post",
                        std("dema"), std("dema-post"), "at_least"),
        _delayed_claim(runs),
        _context_claim(runs),
        # fidelity checks, not claims of the paper: do the reference codes' choices (initialisation,
        # unmasked padding, launch settings; docs/ARCHITECTURE.md) move the scores?
        _pairwise_claim(runs, "Fidelity: the official DeMa code's choices (dema-official) beat ours (dema)",
                        "dema-official", "dema", std("dema-official"), std("dema"), "beats"),
        _pairwise_claim(runs, "Fidelity: DT's official initialisation (dt-official) beats ours (dt)",
                        "dt-official", "dt", std("dt-official"), std("dt"), "beats"),
    ]
    return out


# ----------------------------------------------------------------------------- protocol table


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


# ----------------------------------------------------------------------------- figures


def _figure(nrows: int, ncols: int, width: float = 4.2, height: float = 3.2):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    return fig, axes


def _line_label(model: str, variant_key: str) -> str:
    variant = json.loads(variant_key)
    return LABEL.get(model, model) + (f" [{variant_text(variant)}]" if variant else "")


def write_figures(runs: list[Run], folder: Path) -> list[Path]:
    """Learning curves, training loss and final-score bars, one file of each per protocol (matplotlib Agg)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for protocol in sorted({r.protocol for r in runs}):
        mine = [r for r in runs if r.protocol == protocol]
        datasets = sorted({r.dataset for r in mine})
        groups = group_runs(mine)
        cells = sorted({(model, vkey) for (_, _, model, vkey) in groups}, key=lambda c: _cell_rank(*c))
        layout = _Layout(protocol, datasets, groups, cells, {cell: f"C{i % 10}" for i, cell in enumerate(cells)},
                         re.sub(r"[^A-Za-z0-9_.-]+", "_", protocol), folder)
        if any(r.curve for r in mine):
            written.append(_learning_figure(layout))
        if any(r.loss_curve for r in mine):
            written.append(_loss_figure(layout))
        written.append(_scores_figure(layout))
    return written


@dataclass
class _Layout:
    """What the figures of one protocol share: panels per dataset, a colour per (model, variant)."""

    protocol: str
    datasets: list[str]
    groups: dict
    cells: list[tuple[str, str]]
    color: dict
    safe: str  # the protocol as a file-name part
    folder: Path

    @property
    def shape(self) -> tuple[int, int]:
        ncols = min(3, len(self.datasets))
        return math.ceil(len(self.datasets) / ncols), ncols


def _panels(layout: _Layout, draw, ylabel: str, title: str, name: str, line_plot: bool = True) -> Path:
    """One panel per dataset: `draw(ax, dataset)` fills it; titles, labels, grid, legend, file."""
    fig, axes = _figure(*layout.shape)
    for ax, dataset in zip(axes, layout.datasets):
        draw(ax, dataset)
        ax.set_title(dataset)
        ax.set_ylabel(ylabel)
        if line_plot:
            ax.set_xlabel("updates")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
        else:
            ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(layout.datasets):]:
        ax.set_visible(False)
    fig.suptitle(f"{title} ({layout.protocol})")
    path = layout.folder / f"{name}_{layout.safe}.png"
    fig.savefig(path, dpi=110)
    return path


def _learning_figure(layout: _Layout) -> Path:
    def draw(ax, dataset):
        for model, vkey in layout.cells:
            group = layout.groups.get((layout.protocol, dataset, model, vkey))
            if not group or not all(r.curve for r in group):
                continue
            steps = sorted(set.intersection(*({s for s, _ in r.curve} for r in group)))
            if not steps:
                continue
            values = np.array([[dict(r.curve)[s] for s in steps] for r in group])  # (seeds, steps)
            color = layout.color[(model, vkey)]
            ax.plot(steps, values.mean(axis=0), label=_line_label(model, vkey), color=color)
            if len(group) > 1:
                ax.fill_between(steps, values.min(axis=0), values.max(axis=0), alpha=0.2, color=color, linewidth=0)

    return _panels(layout, draw, "normalised score", "Learning curves: mean over seeds, band = min to max",
                   "learning_curves")


def _loss_figure(layout: _Layout) -> Path:
    def draw(ax, dataset):
        for model, vkey in layout.cells:
            for i, r in enumerate(layout.groups.get((layout.protocol, dataset, model, vkey)) or []):
                if r.loss_curve:
                    steps, losses = zip(*r.loss_curve)
                    ax.plot(steps, losses, color=layout.color[(model, vkey)], alpha=0.8,
                            label=_line_label(model, vkey) if i == 0 else None)
        ax.set_yscale("log")

    return _panels(layout, draw, "training loss", "Training loss: one line per seed", "loss_curves")


def _scores_figure(layout: _Layout) -> Path:
    def draw(ax, dataset):
        bars = [(m, v, layout.groups[(layout.protocol, dataset, m, v)]) for m, v in layout.cells
                if (layout.protocol, dataset, m, v) in layout.groups]
        means = [statistics.mean(r.final for r in g) for _, _, g in bars]
        stds = [statistics.stdev(r.final for r in g) if len(g) > 1 else 0.0 for _, _, g in bars]
        x = np.arange(len(bars))
        ax.bar(x, means, yerr=stds, capsize=3, color=[layout.color[(m, v)] for m, v, _ in bars])
        ax.set_xticks(x, [_line_label(m, v) for m, v, _ in bars], rotation=30, ha="right", fontsize=7)

    return _panels(layout, draw, "final normalised score", "Final weights: mean +- std over seeds", "final_scores",
                   line_plot=False)


# ----------------------------------------------------------------------------- the report


@dataclass
class Report:
    runs: list[Run]
    problems: list[str]
    groups: list[dict]
    aggregates: list[dict]
    claims: list[dict]
    datasets: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"runs": [r.to_json() for r in self.runs], "aggregates": self.aggregates, "claims": self.claims,
                "datasets": self.datasets, "problems": self.problems}


def build_report(paths: list[str | Path]) -> Report:
    runs, problems = load_runs(paths)
    return Report(runs, problems, summaries(runs), aggregates(runs), claims(runs), dataset_rows(runs))


def _f(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pm(mean, std, digits: int = 1) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def _refs_for(dataset: str) -> dict[str, float]:
    base = parse_dataset(dataset).base
    return {ref.figure: ref.value for ref in REFERENCES if ref.dataset == base}


def markdown(report: Report, command: str, figures: list[Path], relative_to: Path) -> str:
    lines = (_head_section(report.runs, command) + _claims_section(report) + _aggregates_section(report)
             + _groups_section(report) + _datasets_section(report) + _flattening_section(report.runs) + _reference_section(report)
             + _figures_section(figures, relative_to) + _protocol_section(report.runs))
    lines += ["", "## Problems", ""]
    lines += [f"- {p}" for p in report.problems] or ["None: every record found was read."]
    return "\n".join(lines) + "\n"


def _head_section(runs: list[Run], command: str) -> list[str]:
    protocols = sorted({r.protocol for r in runs})
    updates = sorted({r.updates for r in runs if r.updates is not None})
    lines = [
        "# DeMa against Decision Transformer: results from run records",
        "",
        f"Generated by `dema report` from {len(runs)} run records; do not edit by hand, rerun the command:",
        "",
        f"    {command}",
        "",
        "## How our data and protocol differ from the paper's",
        "",
        "- Datasets: collected here by `dema collect` (docs/DATASETS.md) in Gymnasium's MuJoCo v5 from other "
        "behaviour policies, not D4RL's own files; scores use D4RL's normalisation "
        "(100 × (R − random) / (expert − random)) but are not comparable with numbers on D4RL data.",
        *(["- Atari: datasets collected here (`dema collect GAME scripted`: a controller reading the console RAM, "
           "mixed with random actions at five epsilon levels, docs/DATASETS.md), not the 1% DQN-replay; scores are "
           "gamer-normalised (100 × (R − random) / (gamer − random)) with the DT code's values."]
          if any(r.domain == "atari" for r in runs) else []),
        f"- Updates: {', '.join(f'{u:,}' for u in updates) or '?'} per run (the paper: {PAPER_UPDATES:,} on MuJoCo, {PAPER_ATARI_UPDATES:,} on Atari); "
        f"protocols {', '.join(f'`{p}`' for p in protocols)} (src/dema/presets/protocol-<name>.json).",
        "- Scores: the final weights on the first return target (\"final\"), the best checkpoint re-evaluated with "
        "the final evaluation's episodes, and the best periodic evaluation during training. The paper's code "
        "reports the best evaluation over training (and the best K of 8-20 on MuJoCo), an optimistic figure; "
        "our verdicts use the final weights.",
        "- Reference numbers of other papers below are context only: other data, other protocol.",
        "",
    ]
    return lines


def _claims_section(report: Report) -> list[str]:
    lines = [
        "## Claims of the paper and verdicts",
        "",
        f"Rule: {RULE}",
        "",
        "| claim | verdict | evidence |",
        "| --- | --- | --- |",
    ]
    for c in report.claims:
        lines.append(f"| {c['claim']} | **{c['verdict']}** | {_evidence_text(c['evidence'])} |")
    return lines


def _aggregates_section(report: Report) -> list[str]:
    lines: list[str] = []
    lines += ["", "## Aggregates across datasets", ""]
    if report.aggregates:
        lines += ["IQM (interquartile mean) and mean of final normalised scores over the (runs × datasets) matrix, "
                  f"with stratified-bootstrap 95% intervals (rliable, {BOOTSTRAP_RESAMPLES:,} resamples, seed "
                  f"{BOOTSTRAP_SEED}); only datasets on which every compared model has the same seeds.", "",
                  "| protocol | domain | variant | model | datasets | runs per dataset | IQM [95% CI] | mean [95% CI] | left out |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for a in report.aggregates:
            lines.append(f"| {a['protocol']} | {DOMAIN_LABEL.get(a['domain'], a['domain'])} | {variant_text(a['variant'])} | "
                         f"{LABEL.get(a['model'], a['model'])} | {len(a['tasks'])} | {a['runs_per_task']} | "
                         f"{a['iqm']:.1f} [{a['iqm_ci95'][0]:.1f}, {a['iqm_ci95'][1]:.1f}] | "
                         f"{a['mean']:.1f} [{a['mean_ci95'][0]:.1f}, {a['mean_ci95'][1]:.1f}] | "
                         f"{', '.join(a['left_out']) or '-'} |")
    else:
        lines.append("No set of datasets on which the compared models share their seeds.")
    return lines


def _groups_section(report: Report) -> list[str]:
    lines: list[str] = []
    lines += ["", "## Every (dataset, model, variant)", "",
              "Mean ± std over seeds (std needs two seeds or more).", "",
              "| protocol | dataset | model | variant | seeds | final | best checkpoint, re-evaluated | "
              "best during training | params | updates | ms / update | wall time per run |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for g in report.groups:
        wall = g["wall_seconds_mean"]
        lines.append(
            f"| {g['protocol']} | {g['dataset']} | {LABEL.get(g['model'], g['model'])} | {variant_text(g['variant'])} | "
            f"{', '.join(map(str, g['seeds']))} | {_pm(g['final_mean'], g['final_std'])} | "
            f"{_pm(g['best_checkpoint_mean'], g['best_checkpoint_std'])} | "
            f"{_pm(g['best_during_training_mean'], g['best_during_training_std'])} | "
            f"{' / '.join(f'{p:,}' for p in g['params']) or '-'} | {' / '.join(f'{u:,}' for u in g['updates']) or '-'} | "
            f"{_f(g['ms_per_update_mean'], 0)} | {'-' if wall is None else f'{wall / 60:.0f} min'} |")
    return lines


def _datasets_section(report: Report) -> list[str]:
    lines = ["", "## The datasets: their own episode returns", "",
             "What the scores above stand beside: the returns of the episodes each model was trained on, on the "
             "same normalised scale (D4RL-normalised on MuJoCo, gamer-normalised on Atari).", "",
             "| dataset | transitions | episode return, raw mean ± std | normalised mean ± std | normalised min / max |",
             "| --- | ---: | --- | --- | --- |"]
    for row in report.datasets:
        r = row["returns"]
        if r is None:
            lines.append(f"| {row['dataset']} | {_count(row['transitions'])} | not recorded | - | - |")
            continue
        lines.append(f"| {row['dataset']} | {_count(row['transitions'])} | {_pm(r['return_mean'], r['return_std'])} | "
                     f"{_pm(r['normalized_return_mean'], r['normalized_return_std'])} | "
                     f"{r['normalized_return_min']:.1f} / {r['normalized_return_max']:.1f} |")
    return lines


def _count(value) -> str:
    return "-" if value is None else f"{int(value):,}"


def _flattening_section(runs: list[Run]) -> list[str]:
    lines: list[str] = []
    lines += ["", "## Have the learning curves flattened?", "",
              "Loss: relative drop of the training loss over the second half of training (last 10% of log "
              "intervals against the 10% around half-way), mean over seeds. Score: least-squares slope of the "
              "periodic evaluations over the second half (seeds pooled), normalised points per 1,000 updates, "
              "with a 95% interval; \"flat\" when the interval contains 0. Periodic evaluations use few "
              "episodes, so the score slope is noisy; read it with the loss column and the figures.", "",
              "| protocol | dataset | model | variant | seeds | loss drop, 2nd half | score slope / 1k updates | "
              "points | trend |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for f in flattening(runs):
        slope = "-" if f["score_slope_per_1k"] is None else \
            f"{f['score_slope_per_1k']:+.1f} ± {f['score_slope_ci95_half_width']:.1f}"
        drop = "-" if f["loss_drop_second_half"] is None else f"{100 * f['loss_drop_second_half']:.1f}%"
        lines.append(f"| {f['protocol']} | {f['dataset']} | {LABEL.get(f['model'], f['model'])} | "
                     f"{variant_text(f['variant'])} | {f['seeds']} | {drop} | {slope} | {f['score_points']} | "
                     f"{f['score_trend'] or '-'} |")
    return lines


def _figures_section(figures: list[Path], relative_to: Path) -> list[str]:
    lines: list[str] = []
    lines += ["", "## Figures", ""]
    if figures:
        for path in figures:
            rel = Path(os.path.relpath(path, relative_to)).as_posix()
            lines += [f"![{path.stem}]({rel})", ""]
    else:
        lines += ["Not written (pass --figures DIR or --out FILE).", ""]
    return lines


def _protocol_section(runs: list[Run]) -> list[str]:
    lines: list[str] = []
    lines += ["## Protocol of every run", "",
              "Runs with identical settings share a row. K = context length; targets = raw return targets "
              "(the first is the headline); dataset sha256 = the first 12 hex digits.", "",
              "| protocol | dataset | models | seeds | updates | warm-up | lr | batch | K | eval episodes | targets | "
              "eval seeds | dataset file | sha256 | transitions |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for p in protocol_rows(runs):
        lines.append(
            f"| {p['protocol']} | {p['dataset']} | {', '.join(p['models'])} | {', '.join(map(str, p['seeds']))} | "
            f"{_int(p['updates'])} | {_int(p['warmup'])} | {_g(p['lr'])} | {_g(p['batch'])} | {_g(p['K'])} | "
            f"{_g(p['episodes'])} | {', '.join(_g(t) for t in p['targets']) or '-'} | "
            f"{', '.join(map(str, p['eval_seeds'])) or '-'} | {p['path'] or '-'} | {p['sha256'] or '-'} | "
            f"{_int(p['transitions'])} |")
    return lines


def _int(value) -> str:
    return "-" if value is None else f"{int(value):,}"


def _g(value) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _evidence_text(e: dict) -> str:
    if e.get("missing"):
        return f"no paired runs: {e['missing']}"
    if "params_ratio_dema_over_dt" in e:
        ratios = ", ".join(f"{d} {r:.2f}" for d, r in e["params_ratio_dema_over_dt"].items())
        return f"DeMa / DT parameters: {ratios} (bound {e['bound']:g})"
    text = (f"{e['pairs']} pairs on {', '.join(e['datasets'])}; mean A − B {e['mean_difference']:+.1f}, "
            f"95% CI [{e['ci95'][0]:+.1f}, {e['ci95'][1]:+.1f}] (A = {e['a']}, B = {e['b']})")
    if e.get("note"):
        text += f"; {e['note']}"
    if e.get("a_params_mean") and e.get("b_params_mean"):
        text += f"; params {e['a_params_mean']:,} vs {e['b_params_mean']:,}"
    if e.get("a_ms_per_update_mean") and e.get("b_ms_per_update_mean"):
        text += f"; ms / update {e['a_ms_per_update_mean']:.1f} vs {e['b_ms_per_update_mean']:.1f}"
    if "dema_drop_mean" in e:
        text += f"; mean drop DeMa {e['dema_drop_mean']:.1f}, DT {e['dt_drop_mean']:.1f}"
    if e.get("by_dataset"):
        text += "; best K: " + ", ".join(f"{d} {v['best_K']}" for d, v in e["by_dataset"].items())
    return text


def _reference_section(report: Report) -> list[str]:
    datasets = sorted({r.dataset for r in report.runs if _refs_for(r.dataset)})
    lines = ["", "## Reference numbers beside ours (context, not targets)", "",
             "Other papers' scores on D4RL's (or DQN-replay's) own data with their own protocols; ours are on "
             "data collected here and scored with the final weights, so differences say little about the models. "
             "The comparison that counts is DeMa against DT on the same data in one protocol (above).", ""]
    if not datasets:
        return lines + ["None of our datasets has a reference score."]
    figures = [f for f in dict.fromkeys(ref.figure for ref in REFERENCES)
               if any(f in _refs_for(d) for d in datasets)]
    lines += ["| dataset | ours: DeMa final | ours: DT final | ours: DT best during training | "
              + " | ".join(figures) + " |",
              "| --- | --- | --- | --- | " + " | ".join("---" for _ in figures) + " |"]
    for dataset in datasets:
        mine = [r for r in report.runs if r.dataset == dataset and _standard(r) and not r.variant]
        def ours(model: str, attr: str, mine=mine) -> str:
            values = [getattr(r, attr) for r in mine if r.model == model]
            return _pm(_mean(values), _std(values))

        refs = _refs_for(dataset)
        lines.append(f"| {dataset} | {ours('dema', 'final')} | {ours('dt', 'final')} | {ours('dt', 'best_train')} | "
                     + " | ".join(_f(refs.get(f), 2) for f in figures) + " |")
    lines += ["", "Sources:"]
    sources: dict[str, list[str]] = defaultdict(list)
    for ref in REFERENCES:
        if any(ref.dataset == parse_dataset(d).base for d in datasets) and ref.figure not in sources[ref.source]:
            sources[ref.source].append(ref.figure)
    lines += [f"- {', '.join(figures)}: {source}" for source, figures in sources.items()]
    return lines
