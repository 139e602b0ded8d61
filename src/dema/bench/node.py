"""`dema bench node`: DeMa's SSM node (dema.scan.numba_ssm, the CPU training path) forward and
backward at given shapes, or whole RNN-like DeMa updates on a dataset (docs/PERFORMANCE.md, "Long
sequences": the backward in chunks).

To compare two commits, run it from each (the older one e.g. from a `git worktree` on PYTHONPATH),
alternating, on the same machine in the same minutes.
"""

from __future__ import annotations

import statistics
import tempfile
import time

import torch

from dema.bench.timing import machine_info

DT_RANK, CONV_WIDTH = 4, 4  # the MuJoCo preset's (d_model 64: dt_rank ceil(64 / 16), d_conv 4)


def node_timing(batch: int, length: int, d_inner: int, d_state: int, repeats: int) -> dict:
    """Median forward and backward ms of one gated SSM node on random inputs, after one warm-up."""
    from dema.scan.numba_ssm import ssm_node

    torch.manual_seed(0)
    xz = torch.randn(batch, length, 2 * d_inner).requires_grad_()  # x and the gate z, as in_proj writes them
    params = [torch.randn(d_inner, 1, CONV_WIDTH) * 0.3, torch.zeros(d_inner),  # conv weight, bias
              torch.randn(DT_RANK + 2 * d_state, d_inner) * 0.05,  # x_proj
              torch.randn(d_inner, DT_RANK) * 0.1, torch.full((d_inner,), -3.0),  # dt_proj weight, bias
              -torch.arange(1, d_state + 1.0).repeat(d_inner, 1), torch.ones(d_inner)]  # A, D
    params = [p.requires_grad_() for p in params]
    grad = torch.randn(batch, length, d_inner)
    forward, backward = [], []
    for i in range(repeats + 1):  # the first is a warm-up (Numba loads or compiles its kernels)
        began = time.perf_counter()
        y = ssm_node(xz, None, *params, True)
        middle = time.perf_counter()
        y.backward(grad)
        if i:
            forward.append(1e3 * (middle - began))
            backward.append(1e3 * (time.perf_counter() - middle))
    return {"batch": batch, "length": length, "forward_ms": round(statistics.median(forward), 2),
            "backward_ms": round(statistics.median(backward), 2), "backward_min_ms": round(min(backward), 2)}


def run_node_bench(shapes: list[tuple[int, int]], d_inner: int = 128, d_state: int = 64, repeats: int = 5) -> dict:
    """`shapes`: (batch, length) pairs; Di and N default to the MuJoCo preset's (d_model 64, N 64)."""
    rows = [node_timing(batch, length, d_inner, d_state, repeats) for batch, length in shapes]
    return {"rows": rows, "d_inner": d_inner, "d_state": d_state, "repeats": repeats, **machine_info()}


def run_update_bench(dataset: str, updates: int = 4) -> dict:
    """Training updates of grid rnn-like's cells (dema-rnn, protocol cpu-main, batch 8 whole
    trajectories) on `dataset`: each update's ms after one warm-up, in a run directory that is
    deleted after."""
    from dema.train.cli import parse
    from dema.train.loop import one_update
    from dema.train.setup import start

    with tempfile.TemporaryDirectory() as runs:
        config, _ = parse(["--model", "dema-rnn", "--dataset", dataset, "--protocol", "cpu-main",
                           "--optim.batch-size", "8", "--runs-dir", runs])
        session = start(config, False, log=lambda *args: None)
        try:
            session.policy.train()
            batches = [session.stream.next() for _ in range(updates)]
            one_update(session, batches[0])
            times = []
            for batch in batches:
                began = time.perf_counter()
                one_update(session, batch)
                times.append(round(1e3 * (time.perf_counter() - began), 1))
        finally:
            session.close()
    return {"dataset": dataset, "model": "dema-rnn", "batch_size": 8, "update_ms": times,
            "median_ms": statistics.median(times), **machine_info()}
