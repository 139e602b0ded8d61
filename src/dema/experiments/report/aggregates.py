"""The aggregates of `dema report` across datasets: per comparison and model, the IQM and the mean of the
final normalised scores with rliable's stratified-bootstrap 95% intervals."""

from __future__ import annotations

import json
import warnings
from collections import defaultdict

import numpy as np

from dema.errors import DemaError
from dema.experiments.report.rule import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from dema.experiments.report.runs import Run
from dema.models.registry import label, main_table, rank, reference_of

# ----------------------------------------------------------------------------- aggregates (rliable)


def _rliable():
    try:
        from rliable import library, metrics
    except ImportError as exc:
        raise DemaError(f"`dema report` needs rliable for its interval estimates ({exc}); install it with "
                        f"pip install -e \".[sweep]\"") from None
    return library, metrics


def comparisons(models: list[str]) -> list[list[str]]:
    """Which models one aggregate compares: the paper's main table's models together, and every other
    model (an ablation or a fidelity variant) with its reference (both from the model registry; a name
    not registered alone). Each comparison keeps its own datasets, so an ablation run on one dataset
    does not cut the main table's aggregate down to that dataset."""
    table = [m for m in main_table() if m in models]
    out = [table] if table else []
    for model in sorted(set(models) - set(table), key=rank):
        reference = reference_of(model)
        out.append([reference, model] if reference in models else [model])
    return out


def aggregates(runs: list[Run]) -> list[dict]:
    """Per (protocol, domain, variant) and comparison (see `comparisons`): IQM and mean across datasets of
    each model, stratified-bootstrap 95% CIs.

    The (runs x tasks) matrix of each model holds the seeds that every compared model ran on a task
    (dataset), the same number on every task (see `_common_tasks`). The comparison's first two models
    (the reference and the model it tests, or the table's DeMa and DT) always take part; a further
    model (the table's DC or BC) only if it does not shrink that matrix, else it is left out (named)."""
    cells: dict[tuple, dict[str, dict[str, dict[int, float]]]] = defaultdict(lambda: defaultdict(dict))
    for run in runs:
        cells[(run.protocol, run.domain, run.variant_key)][run.model].setdefault(run.dataset, {})[run.seed] = run.final
    out = []
    for (protocol, dom, vkey), by_model in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != "{}", kv[0][2])):
        for compared in comparisons(list(by_model)):
            out += _aggregate_one({m: by_model[m] for m in compared},
                                  {"protocol": protocol, "domain": dom, "variant": json.loads(vkey)})
    return out


def _aggregate_one(by_model: dict[str, dict[str, dict[int, float]]], labels: dict) -> list[dict]:
    models = sorted(by_model, key=rank)
    comparison = [label(m) for m in models]
    size = lambda tasks: sum(len(seeds) for seeds in tasks.values())  # runs x tasks of the matrix
    models, left_out = models[:2], models[2:]
    tasks = _common_tasks({m: by_model[m] for m in models})
    for model in list(left_out):
        grown = _common_tasks({m: by_model[m] for m in [*models, model]})
        if size(grown) >= size(tasks):
            models, tasks = [*models, model], grown
            left_out.remove(model)
    if not tasks:  # the pair shares no (dataset, seed)
        return []
    n_runs = len(next(iter(tasks.values())))
    # (n_runs, tasks) per model: row i holds each task's i-th common seed
    matrices = {m: np.array([[by_model[m][t][tasks[t][i]] for t in sorted(tasks)]
                             for i in range(n_runs)]) for m in models}
    library, metrics = _rliable()
    aggregate = lambda x, m=metrics: np.array([m.aggregate_iqm(x), m.aggregate_mean(x)])
    # rliable's StratifiedBootstrap draws its indices from NumPy's global generator, not from the
    # random_state it is given (rliable 1.2: `np.random.choice` in update_indices), so the same records
    # gave intervals differing in the first decimal between two reports. Seed the global generator
    # for the call and put its state back.
    global_state = np.random.get_state()
    np.random.seed(BOOTSTRAP_SEED)
    try:
        with warnings.catch_warnings():  # arch (under rliable 1.2) deprecates the random_state rliable passes
            warnings.simplefilter("ignore", FutureWarning)
            point, interval = library.get_interval_estimates(
                matrices, aggregate,
                reps=BOOTSTRAP_RESAMPLES, random_state=np.random.RandomState(BOOTSTRAP_SEED))
    finally:
        np.random.set_state(global_state)
    return [{**labels, "comparison": " vs ".join(comparison), "model": m,
             "tasks": sorted(tasks), "runs_per_task": n_runs,
             "iqm": float(point[m][0]), "iqm_ci95": [float(interval[m][0][0]), float(interval[m][1][0])],
             "mean": float(point[m][1]),
             "mean_ci95": [float(interval[m][0][1]), float(interval[m][1][1])],
             "compared_with": [x for x in models if x != m], "left_out": left_out} for m in models]


def _common_tasks(by_model: dict[str, dict[str, dict[int, float]]]) -> dict[str, list[int]]:
    """The tasks (datasets) of one aggregate -> the seeds used on each, the same number n on every task.

    On a dataset only the seeds that every model ran can be compared. rliable's matrix has one row per
    run and one column per task, so it takes n seeds of each task that has at least n; n is chosen to
    fill the largest matrix (n x tasks), the smaller n on a tie (more datasets): while a grid's seeds
    are still landing, say, nine datasets at n = 1 rather than two at n = 3."""
    datasets = set.intersection(*(set(d) for d in by_model.values())) if by_model else set()
    common = {d: sorted(set.intersection(*(set(by_model[m][d]) for m in by_model))) for d in datasets}
    common = {d: seeds for d, seeds in common.items() if seeds}
    if not common:
        return {}
    n = max(range(1, max(map(len, common.values())) + 1),
            key=lambda k: (k * sum(len(seeds) >= k for seeds in common.values()), -k))
    return {d: seeds[:n] for d, seeds in common.items() if len(seeds) >= n}
