"""What ran of each experiment: a grid's planned cells (its YAML) against the records of its runs.

A record names its grid and its run (`<dataset>_<model>_<protocol>_s<seed>[_<field>-<value>...]`,
`Cell.name`); a packaged grid lists the cells it plans, so the report can say per grid and model how
many cells have a record, which are missing, and which packaged grids have none at all. A record of a
grid that is not packaged (a user's own YAML) is counted without a plan.
"""

from __future__ import annotations

from collections import defaultdict

from dema.envs import dataset_name
from dema.errors import ConfigError
from dema.experiments.grid import available_grids, load_grid
from dema.experiments.report.runs import Run

MISSING_SHOWN = 6  # missing cells named per row; the rest are counted


def coverage(runs: list[Run]) -> dict:
    """{"grids": [a row per (grid, model)], "not_run": [packaged grids without a record]}. A row:
    {"grid", "model", "planned" (None: not a packaged grid), "recorded", "missing" (run names),
    "missing_labels" (the same as "<dataset> s<seed>"), "complete_seeds" (the seeds with every planned
    cell of the model recorded), "unplanned" (records of runs the grid does not plan, e.g. after its
    YAML changed)}."""
    recorded: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))  # grid -> model -> runs
    for run in runs:
        if run.grid:
            recorded[run.grid][run.model].add(run.run)
    grids = available_grids()  # read the package's folder once
    packaged = [g for g in grids if not _is_smoke(g)]
    rows = []
    for name in sorted(recorded, key=lambda g: (g not in packaged, g)):  # packaged grids first
        plan = _plan(name) if name in grids else None
        models = list(plan) if plan is not None else []
        models += sorted(m for m in recorded[name] if m not in models)
        for model in models:
            done = recorded[name].get(model, set())
            if plan is None or model not in plan:
                rows.append({"grid": name, "model": model, "planned": None, "recorded": len(done), "missing": [],
                             "missing_labels": [], "complete_seeds": [], "unplanned": sorted(done)})
                continue
            cells = plan[model]  # (seed, run name, label)
            planned_runs = {run for _, run, _ in cells}
            seeds = sorted({seed for seed, _, _ in cells})
            rows.append({"grid": name, "model": model, "planned": len(cells), "recorded": len(done & planned_runs),
                         "missing": [run for _, run, _ in cells if run not in done],
                         "missing_labels": [label for _, run, label in cells if run not in done],
                         "complete_seeds": [s for s in seeds if all(run in done for seed, run, _ in cells if seed == s)],
                         "unplanned": sorted(done - planned_runs)})
    return {"grids": rows, "not_run": [g for g in packaged if g not in recorded]}


def _is_smoke(name: str) -> bool:
    """A packaged grid that tests the machinery (its `smoke: true`), not an experiment."""
    try:
        return load_grid(name).smoke
    except ConfigError:
        return False


def _plan(name: str) -> dict[str, list[tuple[int, str, str]]] | None:
    """model -> [(seed, run name, short label)] of a packaged grid's cells, in the grid's order; None if
    it no longer loads. The label names the dataset, the seed and the swept values that vary."""
    try:
        grid = load_grid(name)
    except ConfigError:
        return None
    varying = {field for field, values in grid.sweep.items() if len(values) > 1}
    plan: dict[str, list[tuple[int, str, str]]] = {m: [] for m in grid.models}
    for cell in grid.cells():
        label = f"{dataset_name(cell.dataset)} s{cell.seed}" + "".join(
            f" {field.split('.')[-1]}={value}" for field, value in cell.variant if field in varying)
        plan[cell.model].append((cell.seed, cell.name(grid.protocol), label))
    return plan


def missing_text(row: dict) -> str:
    missing = row["missing_labels"]
    if not missing:
        return "-"
    if row["recorded"] == 0:
        return "all"
    shown = ", ".join(missing[:MISSING_SHOWN])
    return shown + (f" (+{len(missing) - MISSING_SHOWN} more)" if len(missing) > MISSING_SHOWN else "")
