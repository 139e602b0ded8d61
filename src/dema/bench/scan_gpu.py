"""`dema bench scan-gpu`: the selective scan on a GPU, every path, and the Triton kernel at several tile sizes.

Paths: the Triton kernel ("gpu"), the PyTorch node ("torch"), the sequential reference ("ref", only
up to REF_MAX_LENGTH steps: it runs one small kernel per step) and mamba-ssm's CUDA kernel
("mamba_ssm") when it is importable, each at every shape; at the first shape the Triton kernel also
at the tile settings of TILE_SWEEP (tile, chunk length, warps), so that the first GPU run says which
to keep (docs/PERFORMANCE.md). Per row the milliseconds of a forward (no autograd) and of a forward
+ backward, each the mean of `reps` calls timed with CUDA events after one warm-up, and the peak
memory of the forward + backward; a path that fails is a row with its error, and the others go on.
Inputs as `SelectiveSSM` passes them: input-dependent B and C, D, z, a delta bias, softplus.

On the CPU the Triton kernel runs only under Triton's interpreter (TRITON_INTERPRET=1: element by
element in Python, for tests on tiny shapes), timed with the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from dema.bench.timing import machine_info
from dema.scan import mamba_ssm_available, selective_scan_ref, selective_scan_torch, triton_scan

SHAPES = ((64, 128, 60, 64), (8, 128, 3000, 64), (64, 256, 60, 16))  # (batch, d_inner, length, d_state)
TILE_SWEEP = ((4096, 32, 4), (2048, 16, 8), (8192, 32, 8), (4096, 64, 8))  # (tile, chunk, warps) beside the default
REF_MAX_LENGTH = 100


def scan_inputs(batch: int, d_inner: int, length: int, d_state: int, device: str) -> list[torch.Tensor]:
    """u, delta, A, B, C, D, z, delta_bias (leaves that take gradients), seeded."""
    gen = torch.Generator(device=device).manual_seed(0)

    def draw(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, device=device) * scale).requires_grad_()

    A = (-torch.rand(d_inner, d_state, generator=gen, device=device) * 4 - 0.1).requires_grad_()
    return [draw(batch, d_inner, length), draw(batch, d_inner, length, scale=0.5), A, draw(batch, d_state, length),
            draw(batch, d_state, length), draw(d_inner), draw(batch, d_inner, length),
            torch.full((d_inner,), -3.0, device=device).requires_grad_()]


def _timed_ms(fn: Callable[[], object], device: str, reps: int) -> float:
    """Mean milliseconds per call after one warm-up call: CUDA events on a GPU, else the wall clock."""
    fn()
    if not device.startswith("cuda"):
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - start) * 1e3 / reps
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def scan_paths() -> dict[str, Callable]:
    """The paths timed here, by the name rows carry."""
    from dema.scan import _mamba_ssm_scan

    paths = {"gpu": triton_scan.selective_scan_triton, "torch": selective_scan_torch, "ref": selective_scan_ref}
    if mamba_ssm_available():
        paths["mamba_ssm"] = _mamba_ssm_scan
    return paths


def _row(shape, name, scan, x, device, reps, settings=None) -> dict:
    tile, chunk, warps = settings or (None, None, None)
    options = {}
    if settings is not None:  # the Triton kernel at these tile settings, passed, never set on the module
        options = {"blocks": triton_scan.block_sizes(*shape[1:], tile=tile, chunk=chunk), "warps": warps}

    def forward():
        with torch.no_grad():
            scan(*x, True, **options)

    def forward_backward():
        scan(*x, True, **options).sum().backward()

    try:
        fwd = _timed_ms(forward, device, reps)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        both = _timed_ms(forward_backward, device, reps)
        peak = round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.startswith("cuda") else None
        row = {"shape": shape, "variant": name, "fwd_ms": round(fwd, 4), "fwd_bwd_ms": round(both, 4), "peak_mb": peak}
        if settings is not None:
            row.update(tile=tile, chunk=chunk, warps=warps, blocks=options["blocks"])
    except Exception as exc:  # noqa: BLE001  (a path that fails on this GPU is a finding, not the end)
        row = {"shape": shape, "variant": name, "tile": tile, "chunk": chunk, "warps": warps, "error": repr(exc)[:300]}
    return row


def run_scan_gpu(shapes=SHAPES, tile_sweep=TILE_SWEEP, reps: int = 10, device: str = "cuda",
                 on_row: Callable[[dict], None] = lambda row: None) -> dict:
    """{"rows": [...], machine, "gpu"}: every path at every shape, `on_row` called after each row."""
    default = (triton_scan.TILE, triton_scan.CHUNK, triton_scan.WARPS)
    info = {**machine_info(), "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None}
    rows = []
    for i, shape in enumerate(shapes):
        x = scan_inputs(*shape, device=device)
        for name, scan in scan_paths().items():
            if name == "ref" and shape[2] > REF_MAX_LENGTH:
                continue
            settings = [None]
            if name == "gpu":
                settings = [default, *tile_sweep] if i == 0 else [default]
            for setting in settings:
                rows.append(_row(tuple(shape), name, scan, x, device, reps, setting))
                on_row(rows[-1])
    return {"rows": rows, **info}
