"""`dema bench throughput`: training updates per second with several processes sharing one device.

Each process builds a model at hopper-medium's preset (K 20), trains it on one fixed random batch
of 64 (the step `dema train` runs, dema.bench.workloads), and counts its updates for a fixed time
after all processes are ready (a barrier), on one torch thread each; a row is one (model, number of
processes), with the total and each process's updates per second. What it answers: how many cells
of a grid a GPU (or the cores) can train at once before they slow each other down
(docs/PERFORMANCE.md). Processes are spawned, so CUDA starts cleanly in each.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable

DATASET, BATCH = "hopper-medium", 64


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _worker(model: str, seconds: float, device: str, barrier, queue) -> None:
    """One process: build, warm up, wait for the others, then count updates for `seconds`."""
    import torch

    torch.set_num_threads(1)
    from dema.bench.workloads import TrainStep, build, random_batch

    policy, state_dim, act_dim = build(model, DATASET, device=device)
    step = TrainStep(policy, random_batch(BATCH, policy.cfg.context_len, state_dim, act_dim, device=device))
    for _ in range(5):
        step()
    _sync(device)
    barrier.wait()
    start, updates = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        step()
        updates += 1
    _sync(device)
    queue.put(updates / (time.perf_counter() - start))


def run_throughput(models: list[str], processes: list[int], seconds: float, device: str,
                   on_row: Callable[[dict], None] = lambda row: None) -> dict:
    """{"rows": [...], machine}: one row per (model, processes), `on_row` called after each."""
    from dema.bench.timing import machine_info
    from dema.models import model_config

    ctx = mp.get_context("spawn")
    rows = []
    for model in models:
        for procs in processes:
            barrier, queue = ctx.Barrier(procs), ctx.Queue()
            workers = [ctx.Process(target=_worker, args=(model, seconds, device, barrier, queue)) for _ in range(procs)]
            for worker in workers:
                worker.start()
            rates = [queue.get(timeout=60 + 2 * seconds) for _ in workers]
            for worker in workers:
                worker.join()
            rows.append({"model": model, "processes": procs, "updates_per_s_total": round(sum(rates), 1),
                         "updates_per_s_each": [round(r, 1) for r in rates], "batch": BATCH,
                         "preset": f"{DATASET}, K {model_config(model, DATASET).context_len}"})
            on_row(rows[-1])
    return {"rows": rows, "device": device, "seconds": seconds, **machine_info()}
