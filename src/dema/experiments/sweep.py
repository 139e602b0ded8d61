"""Running a grid: every cell (train + final evaluation + run record) as a task on Ray or a process pool.

    runs_dir/
        grid.json            the grid this folder belongs to (a folder holds one grid's cells)
        <cell>/              the cell's run directory (dema.run.RunDir)
        logs/<cell>.log      everything the cell printed

A cell with eval.json is finished and skipped (its record is written if missing, and an existing
record is never replaced); a cell with
train_state.pt resumes from it, exactly (`dema train --resume`); a cell that fails reports its
error and the others go on; Ctrl-C stops the cells where they are, and every finished result and
checkpoint stays on disk. Each cell uses one torch thread, so N workers use N cores.

Executors: Ray (`ray.remote` tasks on a local instance, or an existing cluster with `address`;
fractional GPUs with device cuda) and `local` (a `concurrent.futures` process pool with the same
semantics, for machines where Ray is not installed).
"""

from __future__ import annotations

import contextlib
import json
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

from dema.errors import ConfigError
from dema.experiments.grid import Cell, Grid
from dema.files import atomic_write
from dema.run import RunDir, TrainConfig

# config fields that may differ between a cell's saved config and the grid's without breaking resume
_MACHINE_FIELDS = {"runs_dir", "run_name", "threads", "progress", "device", "overwrite", "tensorboard"}


@dataclass(frozen=True)
class Task:
    """What a worker needs to run one cell: plain data, so it pickles to any executor."""

    cell: str
    config: dict
    log: str
    grid: str
    variant: dict
    results_dir: str | None


def tasks(grid: Grid, cells: list[Cell], runs_dir: Path, results_dir: str | None, device: str) -> list[Task]:
    return [Task(cell.name(grid.protocol), grid.config(cell, str(runs_dir), device).to_dict(),
                 str(runs_dir / "logs" / f"{cell.name(grid.protocol)}.log"), grid.name, dict(cell.variant), results_dir)
            for cell in cells]


def claim_runs_dir(grid: Grid, runs_dir: Path, write: bool = True) -> None:
    """Mark `runs_dir` as this grid's (unless not `write`); refuse a folder that holds another grid's cells."""
    marker = runs_dir / "grid.json"
    if marker.is_file():
        try:
            owner = json.loads(marker.read_text()).get("name")
        except (OSError, json.JSONDecodeError, AttributeError):
            raise ConfigError(f"{marker} is damaged; delete it if {runs_dir} holds only grid {grid.name!r}") from None
        if owner != grid.name:
            raise ConfigError(f"{runs_dir} holds the cells of grid {owner!r}, not {grid.name!r}; "
                              f"give another --runs-dir (e.g. runs/{grid.name})")
    if not write:
        return
    runs_dir.mkdir(parents=True, exist_ok=True)
    (runs_dir / "logs").mkdir(exist_ok=True)
    # atomic: two sweeps of one grid (the background lanes) may read and write the marker at once
    atomic_write(marker, lambda tmp: tmp.write_text(json.dumps(grid.to_dict(), indent=2) + "\n"))


def run_cell(task: Task) -> dict:
    """Train (or resume, or skip) one cell, evaluate it, write its record. Never raises: a failure
    is returned as {"status": "failed", "error": ...} with the traceback in the cell's log."""
    import torch

    torch.set_num_threads(1)
    began = time.time()
    # line-buffered, so `tail -f` on the log follows the cell as it trains
    with open(task.log, "a", buffering=1) as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        print(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} cell {task.cell}", flush=True)
        try:
            status, report = _train_and_evaluate(TrainConfig.from_dict(task.config))
            if task.results_dir:
                from dema.experiments.records import record_from_run, record_path, write_record

                # A cell finished before keeps the record it has: the result as recorded stays, even if
                # the run was evaluated again since (`dema eval` with other targets rewrites eval.json).
                if status != "skipped" or not record_path(task.results_dir, task.grid, task.cell).is_file():
                    write_record(record_from_run(Path(task.config["runs_dir"]) / task.cell, task.grid, task.variant),
                                 task.results_dir)
            return {"cell": task.cell, "status": status, "normalized_mean": report.get("normalized_mean"),
                    "seconds": time.time() - began}
        except Exception as exc:  # reported to the driver; the other cells go on
            traceback.print_exc()
            return {"cell": task.cell, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                    "seconds": time.time() - began}


def _train_and_evaluate(config: TrainConfig) -> tuple[str, dict]:
    from dema.evaluation.evaluate import evaluate_run
    from dema.train.loop import train

    run = RunDir(config.run_dir())
    if run.eval_report.is_file():
        return "skipped", run.read_json(run.eval_report)  # finished before
    resume = run.train_state.is_file()
    if resume:
        _check_unchanged(config, run)
    elif run.path.exists():  # started but never checkpointed: nothing to keep
        config = replace(config, overwrite=True)
    result = train(config, resume=resume)
    if result.step < config.schedule.updates:
        raise RuntimeError(f"training stopped at update {result.step} of {config.schedule.updates}")
    report = evaluate_run(run.path)
    run.write_eval(report)
    return ("resumed" if resume else "finished"), report


def _check_unchanged(config: TrainConfig, run: RunDir) -> None:
    saved = TrainConfig.load(run.config).to_dict()
    new = config.to_dict()
    changed = sorted(k for k in new if k not in _MACHINE_FIELDS and saved.get(k) != new[k])
    if changed:
        raise ConfigError(f"{run.path} was started with other settings ({', '.join(changed)} differ from the "
                          "grid's); resuming would not be exact: move it away to start the cell again")


# ----------------------------------------------------------------------------- executors


def execute(todo: list[Task], executor: str, workers: int, address: str | None, gpu_fraction: float,
            on_result) -> None:
    if executor == "ray":
        _execute_ray(todo, workers, address, gpu_fraction, on_result)
    else:
        _execute_local(todo, workers, on_result)


def _execute_local(todo: list[Task], workers: int, on_result) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # spawn: workers start clean (no copied torch/OpenMP state from the driver)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    pending = {pool.submit(run_cell, task): task for task in todo}
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                task = pending.pop(future)
                try:
                    on_result(future.result())
                except Exception as exc:  # the worker process itself died
                    on_result({"cell": task.cell, "status": "failed", "error": f"worker died: {exc!r}"})
    except BaseException:  # Ctrl-C (the workers got it too) or SIGTERM (only the driver did): stop them
        for worker in multiprocessing.active_children():
            worker.terminate()  # a cell resumes from its last checkpoint, as after kill -9
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _execute_ray(todo: list[Task], workers: int, address: str | None, gpu_fraction: float, on_result) -> None:
    import ray

    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1, num_gpus=gpu_fraction, max_retries=0)(run_cell)
    pending = {remote.remote(task): task for task in todo}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                task = pending.pop(ref)
                try:
                    on_result(ray.get(ref))
                except Exception as exc:  # the worker process died (ray.exceptions.RayError)
                    on_result({"cell": task.cell, "status": "failed", "error": f"worker died: {exc!r}"})
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        ray.shutdown()
