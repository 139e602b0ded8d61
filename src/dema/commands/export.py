"""`dema export RUN`: the trained policy as an ONNX model, with a JSON beside it that says how to act with it.

    dema export runs/hopper-medium_dema-rnn_paper_s0                 # RUN/policy.onnx and RUN/policy.json
    dema export runs/hopper-medium_dt_paper_s0 --out dt.onnx         # dt.onnx and dt.json
    dema eval runs/hopper-medium_dema-rnn_paper_s0 --runtime onnx    # score it through ONNX Runtime

RNN-like DeMa exports its recurrent step (observation, previous action, return-to-go and the Mamba
state in; action and the next state out); every other model the K-step window it acts on. The
observation normalisation is inside the graph. After writing, the model is run once through ONNX
Runtime (when installed) on random inputs and compared with the PyTorch policy.
"""

from __future__ import annotations

from pathlib import Path

from dema.cli_options import command_parser
from dema.errors import ConfigError


def main(argv: list[str]) -> int:
    from dema.export.onnx import FORMATS

    parser = command_parser("dema export", __doc__.split("\n")[0])
    parser.add_argument("run_dir", help="a run directory written by `dema train`")
    parser.add_argument("--format", default="onnx", help=f"what to write: {', '.join(FORMATS)} (default onnx)")
    parser.add_argument("--out", type=Path, help="the model file (default RUN/policy.onnx, RUN/policy-best.onnx "
                                                 "for --checkpoint best); its JSON gets the same name, .json")
    parser.add_argument("--checkpoint", choices=["final", "best"], default="final", help="which weights (default final)")
    args = parser.parse_args(argv)
    if args.format not in FORMATS:
        raise ConfigError(f"unknown format {args.format!r}; dema export writes {', '.join(FORMATS)}")
    if args.out is not None and args.out.suffix == ".json":
        raise ConfigError(f"--out {args.out}: the model's description is written beside it as .json; name the "
                          "model itself (for example policy.onnx)")

    from dema.export.onnx import describe, onnx_model, require_onnx, write_export
    from dema.evaluation.evaluate import load_policy
    from dema.run import RunDir

    require_onnx()
    run_files = RunDir(args.run_dir)
    run = run_files.load()  # "not a trained run" before anything else
    out = args.out or run_files.exported(args.checkpoint)
    with run_files.lock():  # not while training replaces the weights
        weights = run_files.checkpoint(args.checkpoint)
        policy = load_policy(run, weights).eval()
        config = run.config.model
        print(f"exporting {run.config.model_name} ({'recurrent step' if config.recurrent else f'K {config.context_len} window'}, "
              f"{weights.name}) with torch.onnx ...", flush=True)
        model, signature = onnx_model(policy, run.stats.state_mean, run.stats.state_std, config.recurrent,
                                      config.context_len)
        description = describe(run, args.checkpoint, run_files.checkpoint_step(args.checkpoint), signature, model)
    out.parent.mkdir(parents=True, exist_ok=True)
    path, meta = write_export(out, model, description)
    print(f"wrote {path} ({len(model) / 1024:.0f} KB) and {meta}")
    check = _check_against_torch(policy, run.stats, config, model, description)
    if check:
        print(check)
    return 0


def _check_against_torch(policy, stats, config, model: bytes, description: dict) -> str:
    """One line: how far ONNX Runtime's actions are from the PyTorch policy's on random decisions."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "onnxruntime is not installed: the model was not run (pip install -e \".[export]\" to check it)"
    from dema.export.check import largest_difference

    worst, decisions = largest_difference(policy, stats, config, model, description)
    return f"checked: ONNX Runtime's actions equal the PyTorch policy's to {worst:.1e} over {decisions} random decisions"
