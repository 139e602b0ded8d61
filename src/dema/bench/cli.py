"""`dema bench`: compute-cost benchmarks. Every result records the machine, load and versions.

    dema bench step [--json]     DeMa vs DT training step at hopper-medium, K 20, batch 64 (< 1 min)
                                 (--device cuda on a GPU)
    dema bench scan [--json]     the selective scan variants (Numba, torch, reference, mambapy), each form of B, C
    dema bench act  [--json]     one decision at batch 1: recurrent step vs K-step windows
    dema bench cost [--json]     the paper's Figure 2 / Table 7 study; JSON + plots in bench_out/
                                 (--table-only: Table 7 alone; --device cuda on a GPU)
    dema bench all               scan, step, act and cost, into bench_out/
    dema bench tables [DIR]      the markdown tables of docs/PERFORMANCE.md from the JSON files --out
                                 wrote (default bench_out/); nothing is measured
    dema bench profile           where a training step's CPU time goes (torch profiler, DeMa and DT)
    dema bench collect           collection speed (steps/s) by vector mode and environment copies
    dema bench throughput        training updates/s with 1 and 8 processes sharing a device (--device cuda)
    dema bench scan-gpu          the scan on a GPU: Triton at several tile sizes, torch, reference, mamba-ssm
    dema bench node              DeMa's SSM node (the CPU training path) at batch x steps shapes, or
                                 whole RNN-like DeMa updates on a dataset (--updates DATASET)

Without --json each result prints as the markdown tables of docs/PERFORMANCE.md (dema.bench.tables,
also what `dema bench tables` prints from the files --out wrote).

Threads: the benchmarks run on ONE torch thread unless --threads says otherwise (0: torch's
default). Measured on a 2-core VM shared with other jobs (docs/PERFORMANCE.md): with two threads,
every parallel PyTorch op waits for its second OpenMP thread to be scheduled, and small ops became
10-100x slower (an RNN-like acting sweep: 21-29 ms on one thread, 66-5400 ms on two), which makes
two-thread timings measure the neighbours rather than the code. OMP_WAIT_POLICY=passive (set
before starting Python) removes most of that penalty when two threads are wanted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dema.bench import tables
from dema.cli_options import command_parser
from dema.errors import ConfigError
from dema.models.registry import MODELS, Study, models_in


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("dema bench", __doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)

    def common(p, budget):
        p.add_argument("--json", action="flag", help="print one JSON object instead of a table")
        p.add_argument("--threads", type=int, default=1,
                       help="torch threads (default 1: on a busy machine two threads mostly measure the other "
                            "jobs, see docs/PERFORMANCE.md); 0 keeps torch's default")
        p.add_argument("--budget", type=float, default=budget, help="seconds of timing per measurement")
        p.add_argument("--out", type=Path, default=None, help="also write the JSON (and plots) into this folder")

    p = sub.add_parser("step", help="DeMa vs DT training step (the quick check)")
    common(p, 30.0)
    p.add_argument("--dataset", default="hopper-medium")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--device", default="cpu", help="torch device of the models and batches (cpu, cuda)")
    p = sub.add_parser("scan", help="selective scan variants against the floor")
    common(p, 6.0)
    p.add_argument("--shape", default="64,128,60,64", help="batch,d_inner,length,d_state")
    p.add_argument("--ghz", type=float, default=2.6, help="clock assumed for the floor")
    p.add_argument("--variants", default="", help="comma-separated subset (numba,torch,mambapy-pscan,reference; fused: torch's old name)")
    p.add_argument("--forms", default="", help="forms of B and C, comma-separated subset "
                                               "(input-dependent,time-invariant,grouped; default all three)")
    p.add_argument("--groups", type=int, default=None,
                   help="groups of the grouped form, dividing d_inner (default: the most, up to 4, that do)")
    p = sub.add_parser("act", help="acting cost at batch 1")
    common(p, 15.0)
    p.add_argument("--dataset", default="hopper-medium")
    p = sub.add_parser("cost", help="the paper's cost study (time, memory vs length; params, MACs)")
    common(p, 10.0)
    p.add_argument("--lengths", default="10,20,50,100,300,1000", help="sequence lengths in steps")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--device", default="cpu", help="torch device of the timings and memory (cpu, cuda); MACs are "
                                                   "counted on the CPU")
    p.add_argument("--table-only", action="flag", help="only the preset table (Table 7), not the curves")
    p.add_argument("--train", action="flag", default=True,
                   help="time a training step in the preset table (--no-train: the table without it)")
    p = sub.add_parser("all", help="scan, step, act and cost into bench_out/")
    common(p, 10.0)
    p = sub.add_parser("tables", help="the markdown tables of the JSON files --out wrote (measures nothing)")
    p.add_argument("folder", nargs="?", type=Path, default=Path("bench_out"),
                   help="the folder of step.json, scan.json, act.json, cost.json (default bench_out)")
    p = sub.add_parser("profile", help="a training step's CPU time by group (torch profiler), DeMa and DT")
    p.add_argument("--dataset", default="hopper-medium")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1); 0 keeps torch's default")
    p = sub.add_parser("collect", help="collection speed (steps/s) by vector mode and environment copies")
    p.add_argument("--env", default="hopper", help="the environment whose medium policy runs (default hopper)")
    p.add_argument("--steps", type=int, default=40_000, help="environment steps per row (default 40000)")
    p.add_argument("--num-envs", type=int, nargs="+", default=[1, 4, 8, 16, 32], help="copies per row")
    p.add_argument("--modes", nargs="+", choices=("sync", "async"), default=["sync", "async"],
                   help="Gymnasium vector modes")
    p = sub.add_parser("throughput", help="training updates/s with several processes sharing one device")
    p.add_argument("--json", action="flag", help="print one JSON object instead of a table")
    p.add_argument("--out", type=Path, default=None, help="also write throughput.json here (after every row)")
    p.add_argument("--device", default="cpu", help="torch device every process trains on (cpu, cuda)")
    headline = ",".join(models_in(Study.HEADLINE))
    p.add_argument("--models", default=headline, help=f"comma-separated models, of {', '.join(MODELS)} "
                                                      f"(default {headline})")
    p.add_argument("--processes", default="1,8", help="comma-separated numbers of processes (default 1,8)")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds each process counts its updates")
    p = sub.add_parser("node", help="DeMa's SSM node forward and backward (CPU), or RNN-like updates")
    p.add_argument("--json", action="flag", help="print one JSON object instead of a table")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1); 0 keeps torch's default")
    p.add_argument("--out", type=Path, default=None, help="also write node.json into this folder")
    p.add_argument("--shapes", nargs="+", default=["64x60", "8x1000", "8x3000"], metavar="BATCHxSTEPS",
                   help="batch x tokens per node (default: the MuJoCo preset's 64x60, and 8x1000, 8x3000 as "
                        "RNN-like DeMa's whole trajectories)")
    p.add_argument("--d-inner", type=int, default=128, help="channels (default 128: the MuJoCo preset's)")
    p.add_argument("--d-state", type=int, default=64, help="states per channel (default 64)")
    p.add_argument("--repeats", type=int, default=5, help="timed forward + backward passes per shape")
    p.add_argument("--updates", metavar="DATASET", default=None,
                   help="time 4 training updates of grid rnn-like's cells (dema-rnn, cpu-main, batch 8) on "
                        "DATASET instead")
    p = sub.add_parser("scan-gpu", help="the scan's paths on a GPU, Triton at several tile sizes")
    p.add_argument("--json", action="flag", help="print one JSON object instead of a table")
    p.add_argument("--out", type=Path, default=None, help="also write scan_gpu.json here (after every row)")
    p.add_argument("--shapes", nargs="+", default=None, metavar="B,Di,L,N",
                   help="shapes to time (default: 64,128,60,64 8,128,3000,64 64,256,60,16)")
    p.add_argument("--reps", type=int, default=10, help="timed calls per measurement (default 10)")
    p.add_argument("--sweep", action="flag", default=True,
                   help="time the Triton kernel at several tile settings (--no-sweep: its default ones only)")
    return parser


def _ints(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--{name} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ConfigError(f"--{name} needs positive integers, got {text!r}")
    return values


def _emit(result: dict, args, name: str, table) -> None:
    out = args.out
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    if args.json:
        print(json.dumps(result))
    else:
        print(table(result))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.what == "tables":
        return _print_tables(args.folder)
    if args.what == "collect":
        return _collect_speed(args)
    if args.what == "throughput":
        return _throughput(args)
    if args.what == "scan-gpu":
        return _scan_gpu(args)
    import torch

    if args.threads < 0:
        raise ConfigError(f"--threads must be >= 0 (0: torch's default), got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    if args.what in ("scan", "all"):
        from dema.bench.scan import run_scan_bench

        shape = _ints(getattr(args, "shape", "64,128,60,64"), "shape")
        if len(shape) != 4:
            raise ConfigError(f"--shape is batch,d_inner,length,d_state; got {args.shape!r}")
        result = run_scan_bench(*shape, budget_s=args.budget, ghz=getattr(args, "ghz", 2.6),
                                variants=_pick_variants(getattr(args, "variants", "")),
                                forms=_pick_forms(getattr(args, "forms", "")), groups=getattr(args, "groups", None))
        _emit(result, _with_out(args), "scan", tables.scan_table)
    if args.what in ("step", "all"):
        from dema.bench.step import run_step_bench

        step_device = getattr(args, "device", "cpu") if args.what == "step" else "cpu"
        if step_device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"--device {step_device}: no CUDA device here (torch {torch.__version__})")
        result = run_step_bench(getattr(args, "dataset", "hopper-medium"), getattr(args, "batch", 64),
                                repeats=getattr(args, "repeats", 30), budget_s=args.budget, device=step_device)
        _emit(result, _with_out(args), "step", tables.step_table)
    if args.what in ("act", "all"):
        from dema.bench.act import run_act_bench

        result = run_act_bench(getattr(args, "dataset", "hopper-medium"), budget_s=args.budget)
        _emit(result, _with_out(args), "act", tables.act_table)
    if args.what in ("cost", "all"):
        from dema.bench.cost import run_cost_bench

        out = args.out or Path("bench_out")
        lengths = _ints(getattr(args, "lengths", "10,20,50,100,300,1000"), "lengths")
        device = getattr(args, "device", "cpu")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA device here (torch {torch.__version__})")
        result = run_cost_bench(lengths, getattr(args, "batch", 8), args.budget, out, log=log, device=device,
                                curves=not getattr(args, "table_only", False),
                                table_train=getattr(args, "train", True))
        _emit(result, args, "cost", tables.cost_tables)
    if args.what == "node":
        _node(args)
    if args.what == "profile":
        from dema.bench.profile import MODELS, profile_line, profile_step

        for model in MODELS:
            print(profile_line(model, profile_step(model, args.dataset)))
    return 0


def _node(args) -> None:
    from dema.bench.node import run_node_bench, run_update_bench

    if args.updates:
        result = run_update_bench(args.updates)
    else:
        shapes = []
        for text in args.shapes:
            parts = text.lower().split("x")
            if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
                raise ConfigError(f"--shapes: each is BATCHxSTEPS with positive integers (e.g. 8x3000), got {text!r}")
            shapes.append((int(parts[0]), int(parts[1])))
        if min(args.d_inner, args.d_state, args.repeats) < 1:
            raise ConfigError(f"--d-inner, --d-state and --repeats must be at least 1, got {args.d_inner}, "
                              f"{args.d_state}, {args.repeats}")
        result = run_node_bench(shapes, args.d_inner, args.d_state, args.repeats)
    _emit(result, args, "node", tables.node_table)


def _throughput(args) -> int:
    import torch

    from dema.bench.throughput import run_throughput

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if not models or unknown:
        raise ConfigError(f"--models {args.models!r}: choose from {', '.join(MODELS)}")
    processes = _ints(args.processes, "processes")
    if args.seconds <= 0:
        raise ConfigError(f"--seconds must be positive, got {args.seconds}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {args.device}: no CUDA device here (torch {torch.__version__})")
    rows: list[dict] = []

    def on_row(row: dict) -> None:  # a run stopped by a time limit keeps the rows it measured
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "throughput.json").write_text(json.dumps({"rows": rows}, indent=1) + "\n")

    result = run_throughput(models, processes, args.seconds, args.device, on_row)
    _emit(result, args, "throughput", tables.throughput_table)
    return 0


def _scan_gpu(args) -> int:
    import torch

    from dema.scan import gpu_scan_available
    from dema.scan.triton_scan import interpreting

    if not gpu_scan_available():
        raise ConfigError('the gpu scan needs Triton: pip install "dema[gpu]"')
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not interpreting():
        raise ConfigError("no CUDA device here; run it on a GPU (TRITON_INTERPRET=1 runs the Triton kernel on the CPU, "
                          "element by element: tiny --shapes only, for tests)")
    shapes = None if args.shapes is None else [_ints(text, "shapes") for text in args.shapes]
    if shapes is not None and any(len(shape) != 4 for shape in shapes):
        raise ConfigError(f"--shapes: each is batch,d_inner,length,d_state; got {' '.join(args.shapes)}")
    if args.reps < 1:
        raise ConfigError(f"--reps must be at least 1, got {args.reps}")
    from dema.bench.scan_gpu import SHAPES, TILE_SWEEP, run_scan_gpu

    rows: list[dict] = []
    info = {}

    def on_row(row: dict) -> None:  # a run stopped by a time limit keeps the rows it measured
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "scan_gpu.json").write_text(json.dumps({"rows": rows, **info}, indent=1) + "\n")

    from dema.bench.timing import machine_info

    info.update(machine_info())
    result = run_scan_gpu(shapes or SHAPES, TILE_SWEEP if args.sweep else (), args.reps, device, on_row)
    _emit(result, args, "scan_gpu", tables.scan_gpu_table)
    return 0


def _print_tables(folder: Path) -> int:
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder; give the folder `dema bench ... --out` wrote (default bench_out)")
    text = tables.render_folder(folder)
    if text:
        print(text)
    return 0


def _collect_speed(args) -> int:
    from dema.data.collect.cli import single_threaded_blas

    if args.steps < 1 or min(args.num_envs) < 1:
        raise ConfigError(f"--steps and --num-envs must be at least 1, got {args.steps} and {args.num_envs}")
    single_threaded_blas()  # before numpy is imported, as `dema collect` runs
    from dema.bench.collect_speed import collect_speed

    collect_speed(args.env, args.steps, args.num_envs, args.modes, emit=lambda line: print(line, flush=True))
    return 0


def _pick_variants(names: str):
    from dema.bench.scan import scan_variants

    available = scan_variants()
    old_names = {"fused": "torch"}  # before issue 28
    wanted = [old_names.get(n.strip(), n.strip()) for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise ConfigError(f"--variants: {', '.join(unknown)} not available here; choose from {', '.join(available)}")
    return {n: available[n] for n in wanted} or None


def _pick_forms(names: str) -> tuple[str, ...]:
    from dema.bench.scan import FORMS

    wanted = tuple(n.strip() for n in names.split(",") if n.strip())
    unknown = [n for n in wanted if n not in FORMS]
    if unknown:
        raise ConfigError(f"--forms: {', '.join(unknown)} is not a form of B and C; choose from {', '.join(FORMS)}")
    return wanted or FORMS


def _with_out(args):
    """`all` writes every part into bench_out/ unless --out says otherwise."""
    if args.what == "all" and args.out is None:
        args.out = Path("bench_out")
    return args


if __name__ == "__main__":
    sys.exit(main())
