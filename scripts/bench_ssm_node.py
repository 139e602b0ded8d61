"""Forward and backward of one SSM node (dema.scan.numba_ssm, DeMa's CPU training path) at given
shapes, median and minimum over repeats, one torch thread: the figures of docs/PERFORMANCE.md,
"Long sequences". Compare two commits by running it from each (e.g. the older one from a
`git worktree` on PYTHONPATH), alternating, on the same machine in the same minutes.

    python scripts/bench_ssm_node.py 64x60 8x1000 8x3000     # BATCHxLENGTH; Di 128, N 64 (MuJoCo preset)
    python scripts/bench_ssm_node.py --updates halfcheetah-medium   # whole RNN-like DeMa updates instead

--updates DATASET times training updates of grid rnn-like's cells (dema-rnn, cpu-main, batch 8
whole trajectories) on a collected dataset: the median of 4 after one warm-up. It builds a run in
a temporary folder, deleted after.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import torch

from dema.machine import cpu_model
from dema.scan.numba_ssm import ssm_node


def measure(batch: int, length: int, d_inner: int, d_state: int, repeats: int) -> dict:
    torch.manual_seed(0)
    dt_rank, width = 4, 4

    def leaf(t):
        return t.requires_grad_()

    xz = leaf(torch.randn(batch, length, 2 * d_inner))  # x and the gate z, as in_proj writes them
    params = dict(conv_w=leaf(torch.randn(d_inner, 1, width) * 0.3), conv_b=leaf(torch.zeros(d_inner)),
                  xproj_w=leaf(torch.randn(dt_rank + 2 * d_state, d_inner) * 0.05),
                  dt_w=leaf(torch.randn(d_inner, dt_rank) * 0.1), dt_b=leaf(torch.full((d_inner,), -3.0)),
                  A=leaf(-torch.arange(1, d_state + 1.0).repeat(d_inner, 1)), D=leaf(torch.ones(d_inner)))
    grad = torch.randn(batch, length, d_inner)
    forward, backward = [], []
    for i in range(repeats + 1):  # the first is a warm-up (Numba loads or compiles)
        began = time.perf_counter()
        y = ssm_node(xz, None, *params.values(), True)
        middle = time.perf_counter()
        y.backward(grad)
        if i:
            forward.append(1000 * (middle - began))
            backward.append(1000 * (time.perf_counter() - middle))
    return {"batch": batch, "length": length, "forward_ms": statistics.median(forward),
            "backward_ms": statistics.median(backward), "backward_min_ms": min(backward)}


def measure_updates(dataset: str, updates: int = 4) -> list[float]:
    """ms of each of `updates` training updates of dema-rnn on `dataset` after one warm-up."""
    from dema.train.cli import parse
    from dema.train.loop import _update
    from dema.train.setup import start

    with tempfile.TemporaryDirectory() as runs:
        config, _ = parse(["--model", "dema-rnn", "--dataset", dataset, "--protocol", "cpu-main",
                           "--optim.batch-size", "8", "--runs-dir", runs])
        session = start(config, False, log=lambda *args: None)
        try:
            session.policy.train()
            batches = [session.stream.next() for _ in range(updates)]
            _update(session, batches[0])
            times = []
            for batch in batches:
                began = time.perf_counter()
                _update(session, batch)
                times.append(1000 * (time.perf_counter() - began))
        finally:
            session.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shapes", nargs="*", default=["64x60", "8x1000", "8x3000"], help="BATCHxLENGTH")
    parser.add_argument("--d-inner", type=int, default=128)
    parser.add_argument("--d-state", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--updates", metavar="DATASET", help="time dema-rnn training updates on DATASET instead")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.updates:
        times = measure_updates(args.updates)
        print(f"{cpu_model()}, torch {torch.__version__}, 1 thread; dema-rnn on {args.updates}, batch 8: ms per update "
              f"{' '.join(f'{t:.0f}' for t in times)}, median {statistics.median(times):.0f}")
        return
    print(f"{cpu_model()}, {platform.machine()}, torch {torch.__version__}, 1 thread; Di {args.d_inner}, "
          f"N {args.d_state}; median of {args.repeats}")
    for shape in args.shapes:
        batch, length = (int(v) for v in shape.split("x"))
        r = measure(batch, length, args.d_inner, args.d_state, args.repeats)
        print(f"B {batch} L {length}: forward {r['forward_ms']:.1f} ms, backward {r['backward_ms']:.1f} ms "
              f"(min {r['backward_min_ms']:.1f})", flush=True)


if __name__ == "__main__":
    main()
