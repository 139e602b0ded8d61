"""`dema sweep GRID_OR_NAME`: run every cell of an experiment grid (train + final evaluation + record).

    dema sweep tiny-check                                   # a local Ray instance on this machine's cores
    dema sweep mujoco-main --models dema dt --seeds 0       # a subset of the grid's cells
    dema sweep sequence-length --datasets hopper-medium --values model.context_len=8   # by dataset / swept value
    dema sweep my_grid.yaml --address ray://head:10001      # an existing Ray cluster
    dema sweep mujoco-main --executor local --workers 16 --device cuda   # no Ray: a process pool
    dema sweep mujoco-main --dry-run                        # list the cells and their state

Finished cells are skipped (a run directory with eval.json, or a record in the results folder from
an earlier session or another machine; a damaged record is named and its cell run again), interrupted
ones resume exactly, a failing one is reported and the others go on; one progress line per finished cell. Records go to --results-dir: by default results/ for
the paper's packaged grids (the project's scientific record), and RUNS_DIR/records for the smoke grid
(tiny-check) and for a grid file of your own, so neither is counted by `dema report results`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
import time
from pathlib import Path

from dema.cli_options import command_parser
from dema.errors import ConfigError, DemaError


def main(argv: list[str]) -> int:
    from dema.experiments.grid import available_grids, load_grid
    from dema.experiments.sweep import check_reachable, claim_runs_dir, execute, tasks

    args = _parser(available_grids()).parse_args(argv)
    _check_workers(args.workers)
    grid = load_grid(args.grid)
    cells = _selected_cells(grid, args)
    executor = args.executor or ("ray" if importlib.util.find_spec("ray") else "local")
    if executor == "ray" and not importlib.util.find_spec("ray"):
        raise ConfigError('--executor ray needs Ray: pip install -e ".[sweep]" (or use --executor local)')
    if args.address and executor != "ray":
        raise ConfigError("--address is a Ray cluster address; it needs --executor ray")
    if args.device == "cuda":
        _check_cuda()
    runs_dir = Path(args.runs_dir or f"runs/{grid.name}")
    results_dir = (str(grid.default_results_dir(runs_dir)) if args.results_dir is None
                   else None if args.results_dir == "" else args.results_dir)
    claim_runs_dir(grid, runs_dir, write=not args.dry_run)
    todo = tasks_all = tasks(grid, cells, runs_dir, results_dir, args.device)
    recorded = _recorded(todo, results_dir, grid.name, runs_dir) if results_dir else []
    if recorded:
        print(f"grid {grid.name}: {len(recorded)} cells already recorded in {results_dir}/{grid.name}/, skipped "
              "(delete a record to run its cell again)", flush=True)
        todo = [t for t in todo if t not in recorded]
    # only the cells left to run need their data (a cell recorded on another machine does not)
    _check_datasets(grid, {cell.dataset for cell, task in zip(cells, tasks_all) if task in todo}, not args.dry_run)
    if args.dry_run:
        for task in todo:
            print(f"{task.cell}: {_state(runs_dir / task.cell)}")
        return 0
    if not todo:  # every selected cell was recorded: start no executor (Ray takes seconds to come up)
        print(f"grid {grid.name}: nothing to run, every selected cell has its record", flush=True)
        return 0
    if args.address:
        check_reachable(args.address)  # in seconds, before Ray retries for minutes

    workers = args.workers or (os.cpu_count() or 1)
    print(f"grid {grid.name}: {len(todo)} cells ({len(grid.cells())} in the grid), executor {executor}, "
          f"{workers if not args.address else 'cluster'} workers, runs in {runs_dir}, "
          f"records in {results_dir or '(none)'}; each cell's progress in {runs_dir / 'logs'}/<cell>.log", flush=True)
    counts: dict[str, int] = {}
    began = time.time()

    def on_result(result: dict) -> None:
        counts[result["status"]] = counts.get(result["status"], 0) + 1
        n = sum(counts.values())
        score = result.get("normalized_mean")
        detail = result.get("error") or (f"normalised {score:.1f}" if score is not None else "")
        print(f"[{n}/{len(todo)}] {result['cell']}: {result['status']} {detail} "
              f"({result.get('seconds', 0) / 60:.1f} min)", flush=True)

    # `kill PID` (SIGTERM) stops the sweep as Ctrl-C does: its workers too (dema.experiments.sweep), so
    # no orphan keeps a cell's run directory locked against the sweep that resumes it
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        execute(todo, executor, workers, args.address, args.gpu_fraction if args.device == "cuda" else 0.0,
                on_result)
    except KeyboardInterrupt:
        print(f"interrupted: finished cells and checkpoints are kept in {runs_dir}; run the same command "
              "again to resume", file=sys.stderr)
        return 130
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(f"grid {grid.name}: {summary} in {(time.time() - began) / 60:.1f} min", flush=True)
    if results_dir:
        print(f"next: `dema report {results_dir}` puts the records' scores, curves and verdicts together", flush=True)
    return 1 if counts.get("failed") else 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _parser(grids: list[str]) -> argparse.ArgumentParser:
    from dema.models import MODELS

    p = command_parser("dema sweep", __doc__.split("\n")[0], epilog=f"packaged grids: {', '.join(grids)}")
    p.add_argument("grid", help="a grid YAML file, or the name of a packaged grid")
    p.add_argument("--runs-dir", help="folder of the cells' run directories (default runs/<grid name>)")
    p.add_argument("--results-dir", help="where run records go (default: results/ for the paper's packaged grids, "
                                          "RUNS_DIR/records for a smoke grid or your own grid file; '' for none)")
    p.add_argument("--executor", choices=["ray", "local"], help="default: ray when installed, else local")
    p.add_argument("--address", help="address of an existing Ray cluster (default: start a local instance)")
    p.add_argument("--workers", type=int, help="cells at a time on this machine (default: its CPU count)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--gpu-fraction", type=float, default=0.25, help="share of a GPU per cell with --device cuda")
    p.add_argument("--models", nargs="+", help=f"only these models of the grid (of {', '.join(MODELS)})")
    p.add_argument("--seeds", nargs="+", type=int, help="only these seeds of the grid")
    p.add_argument("--datasets", nargs="+", help="only these datasets of the grid (as the grid names them)")
    p.add_argument("--values", nargs="+", metavar="FIELD=VALUE",
                   help="only the cells with these values of the grid's swept fields (several values of one "
                        "field: any of them)")
    p.add_argument("--dry-run", action="flag", help="list the cells and their state, run nothing")
    return p


def _check_workers(workers: int | None) -> None:
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: give how many cells run at a time on this machine, 1 or more "
                          f"(leave it out for its {os.cpu_count() or 1} CPUs)")


def _recorded(todo: list, results_dir: str, grid: str, runs_dir: Path) -> list:
    """The tasks whose cell has a sound record in the results folder and no run directory here: they
    finished before, maybe on another machine (records are what accumulates across machines and
    sessions). A damaged record is no result: it is named, and its cell runs again and replaces it."""
    from dema.experiments.records import record_path, record_problem

    recorded = []
    for task in todo:
        path = record_path(results_dir, grid, task.cell)
        if not path.is_file():
            continue
        problem = record_problem(path, task.cell)
        finished_here = (runs_dir / task.cell / "eval.json").is_file()
        if problem:
            again = "written again from its finished run directory" if finished_here else "replaced: its cell runs again"
            print(f"dema sweep: {path} is damaged ({problem}); it is {again}", file=sys.stderr, flush=True)
        elif not finished_here:
            recorded.append(task)
    return recorded


def _state(run_dir: Path) -> str:
    from dema.run import RunDir
    from dema.run.checkpoint import read_train_state

    run = RunDir(run_dir)
    if run.eval_report.is_file():
        return "finished"
    if run.train_state.is_file():
        try:  # verified as a resume reads it
            step = read_train_state(run.train_state)["step"]
        except DemaError:  # any damage: the cell's own resume falls back or reports it with its fix
            return "interrupted, train_state.pt unreadable; the cell will report it"
        return f"interrupted at update {step} (will resume)"
    return "not started"


def _selected_cells(grid, args) -> list:
    """The grid's cells that --models, --seeds, --datasets and --values select; a filter that names
    something the grid does not have, or selects nothing, is one ConfigError."""
    unknown = {"--models": sorted(set(args.models or []) - set(grid.models)),
               "--datasets": sorted(set(args.datasets or []) - set(grid.datasets))}
    for flag, names in unknown.items():
        if names:
            have = grid.models if flag == "--models" else grid.datasets
            raise ConfigError(f"{flag} {' '.join(names)}: not in grid {grid.name} (it has {', '.join(have)})")
    values = _parse_values(grid, args.values or [])
    cells = [c for c in grid.cells() if (not args.models or c.model in args.models)
             and (args.seeds is None or c.seed in args.seeds)
             and (not args.datasets or c.dataset in args.datasets)
             and all(dict(c.variant).get(field) in wanted for field, wanted in values.items())]
    if not cells:
        raise ConfigError(f"no cells: --models {args.models} / --seeds {args.seeds} / --datasets {args.datasets} / "
                          f"--values {args.values} select nothing of grid {grid.name} (models {list(grid.models)}, "
                          f"seeds {list(grid.seeds)}, datasets {list(grid.datasets)}, swept {grid.sweep or 'nothing'})")
    return cells


def _parse_values(grid, items: list[str]) -> dict:
    """--values FIELD=VALUE ...: {field: [values of the grid's sweep]}; a value is matched against the
    sweep's own values by their text, so `model.context_len=8` selects the integer 8."""
    wanted: dict = {}
    for item in items:
        field, sep, text = item.partition("=")
        if not sep or field not in grid.sweep:
            raise ConfigError(f"--values {item}: expected FIELD=VALUE with FIELD one of grid {grid.name}'s swept "
                              f"fields ({', '.join(grid.sweep) or 'it sweeps none'})")
        matches = [v for v in grid.sweep[field] if str(v) == text or str(v).lower() == text.lower()]
        if not matches:
            raise ConfigError(f"--values {item}: grid {grid.name} sweeps {field} over {grid.sweep[field]}")
        wanted.setdefault(field, []).extend(matches)
    return wanted


def _check_datasets(grid, datasets: set[str], download: bool = True) -> None:
    """Every selected cell's dataset must exist before any cell starts: a Minari id missing from Minari's
    root is downloaded here, once, before the workers start (a dry run downloads nothing)."""
    from dema.data.load import resolve_id
    from dema.envs import is_minari_id

    for dataset in [d for d in grid.datasets if d in datasets]:
        if not download and is_minari_id(dataset):
            continue
        if not Path(dataset).expanduser().exists():
            try:
                resolve_id(dataset)
            except DemaError as exc:
                raise ConfigError(f"grid {grid.name}: {exc}") from None


def _check_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("--device cuda: torch sees no CUDA device here (torch "
                          f"{torch.__version__}); use --device cpu")
