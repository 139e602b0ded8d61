"""Running a grid: every cell (train + final evaluation + run record) as a task on Ray or a process pool.

    runs_dir/
        grid.json            the grid this folder belongs to (a folder holds one grid's cells)
        <cell>/              the cell's run directory (dema.run.RunDir)
        logs/<cell>.log      everything the cell printed

A cell with eval.json is finished and skipped (its record is written if missing, and an existing
record is never replaced); a cell with
train_state.pt resumes from it, exactly (`dema train --resume`); a cell that fails reports its
error and the others go on; Ctrl-C stops the cells where they are, and every finished result and
checkpoint stays on disk; a driver killed with -9 takes its local workers with it (no orphan keeps
a cell's lock). Each cell uses one torch thread, so N workers use N cores.

Executors: Ray (`ray.remote` tasks on a local instance, or an existing cluster with `address`;
fractional GPUs with device cuda) and `local` (a `concurrent.futures` process pool with the same
semantics, for machines where Ray is not installed).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
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
                from dema.experiments.records import record_from_run, record_path, record_problem, write_record

                # A cell finished before keeps the record it has: the result as recorded stays, even if
                # the run was evaluated again since (`dema eval` with other targets rewrites eval.json).
                # A damaged record is no result: it is written again from the run directory.
                recorded = record_path(task.results_dir, task.grid, task.cell)
                if status != "skipped" or not recorded.is_file() or record_problem(recorded, task.cell):
                    write_record(record_from_run(Path(task.config["runs_dir"]) / task.cell, task.grid, task.variant),
                                 task.results_dir)
            return {"cell": task.cell, "status": status, "normalized_mean": report.get("normalized_mean"),
                    "seconds": time.time() - began}
        except Exception as exc:  # reported to the driver; the other cells go on
            traceback.print_exc()
            return {"cell": task.cell, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                    "seconds": time.time() - began}


def _train_and_evaluate(config: TrainConfig) -> tuple[str, dict]:
    """A cell: skipped when finished before (eval.json), resumed from its checkpoint, or started."""
    from dema.train.pipeline import train_and_evaluate

    run = RunDir(config.run_dir())
    if run.eval_report.is_file():
        return "skipped", run.read_json(run.eval_report)  # finished before
    resume = run.train_state.is_file()
    if resume:
        _check_unchanged(config, run)
    elif run.path.exists():  # started but never checkpointed: nothing to keep
        config = replace(config, overwrite=True)
    # scored whatever eval.at_end says: eval.json is what marks a cell finished
    result, report = train_and_evaluate(config, resume, score=True)
    if result.step < config.schedule.updates:
        raise RuntimeError(f"training stopped at update {result.step} of {config.schedule.updates}")
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

    # Ctrl-C and SIGTERM only set a flag, read between waits: a KeyboardInterrupt raised wherever the
    # signal lands could leave a future's lock held (inside concurrent.futures.wait), and the pool's
    # shutdown would then wait forever (seen under load: the Ctrl-C test of tests/experiments/test_sweep.py)
    stop = threading.Event()
    in_main_thread = threading.current_thread() is threading.main_thread()  # where Python delivers signals
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)} if in_main_thread else {}
    # spawn: workers start clean (no copied torch/OpenMP state from the driver)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=init_worker)
    try:
        pending = {pool.submit(run_cell, task): task for task in todo}
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            if stop.is_set():
                raise KeyboardInterrupt
            for future in done:
                task = pending.pop(future)
                try:
                    on_result(future.result())
                except Exception as exc:  # the worker process itself died
                    on_result({"cell": task.cell, "status": "failed", "error": f"worker died: {exc!r}"})
    except BaseException:  # Ctrl-C (the workers ignore it) or SIGTERM (only the driver got it): stop them
        for worker in multiprocessing.active_children():
            worker.terminate()  # a cell resumes from its last checkpoint, as after kill -9
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def init_worker() -> None:
    """A local worker's initializer. Ctrl-C reaches the whole process group; the driver alone acts on
    it and terminates the workers. A worker that took the KeyboardInterrupt itself would send it back
    as its cell's result, and a worker terminated while it writes to the result queue leaves that
    queue's lock held, so the pool's shutdown could wait forever (seen once: a fresh clone's full
    suite on a loaded machine, Ctrl-C test of tests/experiments/test_sweep.py). A worker busy
    training holds no lock."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()


def die_with_parent() -> None:
    """A local worker's initializer: the worker dies when the driver does. A driver killed with -9
    runs no handler that could stop its workers, and an orphaned worker would train on for hours
    holding its cell's lock, so the sweep that resumes the cell would be refused. Killed mid-cell,
    the worker leaves what any kill -9 leaves: the cell resumes from its last checkpoint."""
    parent = os.getppid()
    if not _kill_me_with_parent():  # not Linux: look for the parent every second instead
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="dema-watch-parent").start()
    if os.getppid() != parent:  # the driver died before the watch began
        os._exit(1)


def _kill_me_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when its parent exits; False where that cannot be asked."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGKILL)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """ConfigError when nothing answers at a Ray cluster's address. `ray.init` retries an unreachable
    address for a minute or more, in Ray's C++ code (a SIGTERM sent meanwhile once went unheard); a
    TCP connect tells in seconds. Addresses that are not host:port ("auto", other schemes) are left to Ray."""
    target = ray_host_port(address)
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=timeout).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or type(exc).__name__
        raise ConfigError(f"--address {address}: no Ray cluster answers at {target[0]}:{target[1]} ({reason}); "
                          "start it (`ray start --head` on the head node) or leave --address out for a "
                          "local instance") from None


def ray_host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of "HOST:PORT" (a cluster's GCS; 6379 without a port) or "ray://HOST:PORT" (Ray
    Client; 10001 without a port); None for "auto", "local" and other schemes."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "", address
    if address in ("auto", "local") or scheme not in ("", "ray"):
        return None
    host, colon, port = rest.rstrip("/").rpartition(":")
    if not colon or host.endswith(":"):  # no port (an IPv6 host needs [brackets] with one)
        host, port = rest.rstrip("/"), ("10001" if scheme else "6379")
    if not port.isdigit() or not host:
        raise ConfigError(f"--address {address}: expected HOST:PORT (a cluster's head) or ray://HOST:PORT "
                          "(Ray Client)")
    return host.strip("[]"), int(port)


def _connect(ray, address: str) -> None:
    """ray.init on a cluster whose address answers (check_reachable, before the sweep began); a
    failure to join it is the user's to fix (one line), not dema's."""
    try:
        ray.init(address=address, log_to_driver=False)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:  # something answered, but no Ray cluster
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"--address {address}: Ray could not join a cluster there ({first}); check the address "
                          "(`ray status` on the head node prints it) or leave --address out for a local "
                          "instance") from None


def _execute_ray(todo: list[Task], workers: int, address: str | None, gpu_fraction: float, on_result) -> None:
    import ray

    if address:
        _connect(ray, address)
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
