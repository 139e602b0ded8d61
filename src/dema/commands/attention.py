"""`dema attention`: plot the hidden attention of every Mamba layer of a trained DeMa run.

    dema attention runs/hopper-medium_dema_s0            # the run's final weights and dataset
    dema attention --model dema --dataset hopper-medium-replay-small   # an UNTRAINED preset

Writes attention.png and attention.json (channel-mean |alpha| per layer, the decay slope) into
--out (default: the run directory, or bench_out/attention for an untrained model).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dema.analysis.hidden_attention import episode_prefix, plot, summarise
from dema.cli_options import command_parser
from dema.errors import DemaError


def _check_mamba(block, what: str) -> None:
    """Hidden attention is the selective scan's: DT's and DC's blocks have none to show."""
    block = getattr(block, "value", block)
    if not str(block).startswith("mamba"):
        raise DemaError(f"{what}: its {block} blocks have no hidden attention (that is the selective scan's); "
                        f"give a run or model with Mamba blocks ({', '.join(_mamba_models())})")


def _mamba_models() -> list[str]:
    from dema.models import REGISTRY

    return [spec.name for spec in REGISTRY if spec.block.value.startswith("mamba")]


def _load(args):
    from dema.data.load import load_dataset
    from dema.data.trajectories import TrajectoryDataset

    if args.run:
        from dema.analysis.runs import load_trained

        run, policy = load_trained(args.run, args.checkpoint)  # a bad run or checkpoint: one line, exit 2
        _check_mamba(run.config.model.block, f"{args.run} is a {run.config.model_name} run")
        dataset = args.dataset or run.config.data.dataset
        data = TrajectoryDataset(load_dataset(dataset), run.config.model.context_len,
                                 run.config.data.reward_scale, state_mean=run.stats.state_mean,
                                 state_std=run.stats.state_std)
        return policy, data, f"{args.run} ({args.checkpoint})", Path(args.out or args.run)
    from dema.models import build_policy, model_config

    if not args.model or not args.dataset:
        raise DemaError("give a run directory, or --model and --dataset for an untrained model")
    preset = args.preset or args.dataset  # model_config reads any id form (dema.envs.parse_dataset)
    cfg = model_config(args.model, preset)
    _check_mamba(cfg.block, f"--model {args.model}")
    data = TrajectoryDataset(load_dataset(args.dataset), cfg.context_len)
    torch.manual_seed(args.seed)
    policy = build_policy(cfg, data.state_dim, data.act_dim)
    return policy, data, f"UNTRAINED {args.model} ({preset} preset)", Path(args.out or "bench_out/attention")


def main(argv: list[str]) -> int:
    parser = command_parser("dema attention", __doc__.split("\n")[0])
    parser.add_argument("run", nargs="?", help="a run directory written by `dema train`")
    parser.add_argument("--checkpoint", default="model.safetensors", help="weights file inside the run")
    parser.add_argument("--model", help=f"untrained model (without a run): {', '.join(_mamba_models())}")
    parser.add_argument("--dataset", help="dataset id or path (default: the run's)")
    parser.add_argument("--preset", help="preset for an untrained model (default: from --dataset)")
    parser.add_argument("--episode", type=int, default=0, help="episode index in the dataset")
    parser.add_argument("--step", type=int, default=100, help="the window ends at this step of the episode")
    parser.add_argument("--episode-steps", type=int, default=1000, help="steps of the episode for the last-row view")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="output folder")
    args = parser.parse_args(argv)

    policy, data, label, out = _load(args)
    from dema.analysis.runs import check_writable

    check_writable(out)  # before the work, not at the plot
    if not 0 <= args.episode < len(data.episodes):
        raise DemaError(f"--episode {args.episode} is out of range: the dataset has {len(data.episodes)} episodes")
    length = data.episodes[args.episode].length
    end = min(args.step, length - 1)
    window = data.window(args.episode, max(0, end - data.context_len + 1))
    summary = summarise(policy, window, episode_prefix(data, args.episode, args.episode_steps))
    out.mkdir(parents=True, exist_ok=True)
    plot(summary, out / "attention.png", f"hidden attention: {label}, episode {args.episode}")
    report = {"source": label, "episode": args.episode, "window_end_step": end,
              "decay_slope_log10_per_token": summary.decay_fit(),
              "last_row_mean_abs": [row.tolist() for row in summary.last_row]}
    (out / "attention.json").write_text(json.dumps(report))
    slopes = ", ".join(f"{s:.3f}" for s in report["decay_slope_log10_per_token"])
    print(f"wrote {out / 'attention.png'} and attention.json; log10 decay per token by layer: {slopes}")
    print("next: `dema decay RUN` measures the decay over many windows and episodes; `dema surgery RUN` swaps, "
          "randomises or zeroes the attention and scores the damage (docs/ANALYSES.md)")
    return 0
