"""`dema collect ENV RECIPE`: collect a D4RL-style dataset in a simulator.

Examples:
  dema collect hopper medium --steps 200000 --out datasets/hopper-medium-v5.hdf5
  dema collect hopper medium-replay --steps 100000 --seed 0 --num-envs 8
  dema collect hopper medium --policy my_sac_agent.zip          # an SB3 zip as the policy
  dema collect hopper sac-replay --out datasets/hopper-sac-replay-v5.hdf5   # hours; resumable
  dema collect maze2d-umaze controller                           # PointMaze, waypoint controller
  dema collect pong scripted --steps 100000 --out datasets/atari  # Atari: datasets/atari/Pong/1/replay_logs
  dema collect hopper medium --format minari                     # Minari dataset dema/hopper/medium-v0
  dema collect hopper reference-scores                           # v5 reference scores, 100 episodes each
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from dema.cli_options import command_parser
from dema.errors import ConfigError


def _parser() -> argparse.ArgumentParser:
    from dema.data.collect.recipes import RECIPES

    p = command_parser(
        "dema collect",
        description="Collect a D4RL-format hdf5 dataset (or a Minari dataset: --format minari) from behaviour "
        "policies in Gymnasium MuJoCo v5 "
        "(or PointMaze with a waypoint controller).",
        epilog=__doc__.split("\n", 2)[2],
    )
    p.add_argument("env", help="hopper | halfcheetah | walker2d | maze2d-umaze | maze2d-medium | maze2d-large | "
                   "an Atari game (pong, breakout, qbert, seaquest, asterix, frostbite, assault, gopher)")
    p.add_argument("recipe", help=f"MuJoCo: {', '.join(RECIPES)} (or reference-scores: measure the v5 reference "
                   "scores instead of collecting); maze2d: controller | random; "
                   "Atari (pong, breakout, ...): scripted | random | replay")
    p.add_argument("--steps", type=int, default=None, help="transitions to collect (default: D4RL's size)")
    p.add_argument("--out", type=Path, default=None, help="output file (default datasets/ENV-RECIPE-v5.hdf5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the environments and the policy noise")
    p.add_argument("--num-envs", type=int, default=16, help="vectorised environment copies")
    p.add_argument("--vector-mode", choices=("sync", "async"), default="sync",
                   help="sync runs the copies in this process (faster on 2 cores, see docs/DATASETS.md)")
    p.add_argument("--policy-dir", type=Path, default=None,
                   help="folder of {algo}-{Env}.npz policies (default $DEMA_POLICY_DIR, else the policies "
                        "shipped with dema)")
    p.add_argument("--policy", type=Path, default=None,
                   help="a .npz or SB3 .zip policy replacing the medium/expert recipe's own")
    p.add_argument("--overwrite", action="flag", help="replace an existing output file")
    p.add_argument("--progress", action="flag", default=True, help="show a progress bar")
    p.add_argument("--next-observations", action="flag", default=True,
                   help="write next_observations (optional in D4RL; --no-next-observations halves the file)")
    p.add_argument("--ref-episodes", type=int, default=100,
                   help="episodes per reference score: maze2d (random and controller), and the MuJoCo recipe "
                        "reference-scores (random and each shipped policy)")
    p.add_argument("--sac-budget", type=int, default=3_000_000,
                   help="sac-replay: most SAC environment steps before giving up on the medium level")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="sac-replay: folder for checkpoints (default OUT with .work appended)")
    p.add_argument("--sac-learning-starts", type=int, default=10_000, help="sac-replay: random steps before training")
    p.add_argument("--sac-eval-every", type=int, default=10_000,
                   help="sac-replay: steps between evaluations (and checkpoints)")
    p.add_argument("--medium-return", type=float, default=None,
                   help="sac-replay: stop at this evaluation return (default a third of D4RL's expert return)")
    p.add_argument("--epsilons", type=float, nargs="+", default=None,
                   help="Atari scripted: epsilon-random levels, an equal share of the steps each (default 0.02 0.1 0.25 0.5 1)")
    p.add_argument("--capacity", type=int, default=100_000,
                   help="Atari: transitions per DQN-replay checkpoint file")
    p.add_argument("--device", default="auto", help="Atari replay: the torch device DQN trains on (auto, cpu, cuda)")
    p.add_argument("--format", default="d4rl",
                   help="d4rl (an hdf5 file, the default) or minari: a Minari dataset in Minari's root "
                        "($MINARI_DATASETS_PATH), written by minari (MuJoCo recipes; needs .[minari])")
    p.add_argument("--id", default=None, help="--format minari: the dataset's id (default dema/ENV/RECIPE-v0)")
    p.add_argument("--author", default="dema", help="--format minari: the author recorded in the dataset")
    p.add_argument("--author-email", default=None, help="--format minari: the author's email recorded in the dataset")
    return p


def single_threaded_blas() -> None:
    """One BLAS thread, unless the user chose: the policy's matrices are tiny (16 x 256), and on 2
    shared cores a second, spinning BLAS thread made collection 4x slower (docs/DATASETS.md).
    Takes effect only when numpy is not imported yet, as when run from the `dema` command."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def main(argv: list[str] | None = None) -> int:
    single_threaded_blas()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    command = "dema collect " + shlex.join(argv)
    if args.num_envs < 1:
        raise ConfigError(f"--num-envs must be at least 1, got {args.num_envs}")
    if args.format not in FORMATS:
        raise ConfigError(f"--format {args.format}: unknown; dema collect writes {' or '.join(FORMATS)}")
    if args.format != "minari" and (args.id or args.author_email or args.author != "dema"):
        raise ConfigError("--id, --author and --author-email describe a Minari dataset: add --format minari")
    from dema.envs import ATARI_ACTIONS

    if args.format == "minari" and (args.env.lower() in {g.lower() for g in ATARI_ACTIONS} or args.env.startswith("maze2d")):
        raise ConfigError(f"--format minari writes the MuJoCo recipes (hopper, halfcheetah, walker2d); collect "
                          f"{args.env} in its own format (drop --format)")
    if args.env.lower() in {g.lower() for g in ATARI_ACTIONS}:  # Atari: a DQN-replay folder (dema.data.collect.atari)
        from dema.data.collect.atari.recipes import collect_from_args

        path, meta = collect_from_args(args, command)
    elif args.env.startswith("maze2d"):
        from dema.data.collect.maze import collect_maze

        suffix = "" if args.recipe == "controller" else f"-{args.recipe}"  # D4RL's name for the controller data
        out = args.out or Path("datasets") / f"{args.env}{suffix}-v3.hdf5"
        path, meta = collect_maze(args.env, args.recipe, out, args.steps, args.seed, args.num_envs,
                                  args.overwrite, args.progress, command, args.ref_episodes)
    else:
        from dema.envs import env_spec

        spec = env_spec(args.env)
        out = args.out or Path("datasets") / f"{spec.name}-{args.recipe}-v5.hdf5"
        if args.recipe == "reference-scores":
            return _reference_scores(spec, args)
        if args.format == "minari":
            return _collect_minari(spec, args, command)
        if args.recipe == "sac-replay":
            from dema.data.collect.sac_replay import collect_sac_replay

            path, meta = collect_sac_replay(spec, out, args.seed, args.sac_budget, args.work_dir,
                                            args.overwrite, args.progress, command, args.medium_return,
                                            args.sac_learning_starts, args.sac_eval_every)
        else:
            from dema.data.collect.collector import collect

            # policy_dir None: the recipes take $DEMA_POLICY_DIR, else the shipped policies.
            path, meta = collect(spec, args.recipe, out, args.steps, args.seed, args.num_envs,
                                 args.policy_dir, args.policy, args.vector_mode,
                                 args.overwrite, args.progress, command,
                                 next_observations=args.next_observations)
    norm = meta.get("normalized_return_mean")
    print(
        f"wrote {path}: {meta['transitions']} transitions, {meta['episodes']} episodes, return "
        f"{meta['return_mean']:.1f} ± {meta['return_std']:.1f} (min {meta['return_min']:.1f}, max "
        f"{meta['return_max']:.1f})" + (f", normalised {norm:.1f}" if norm is not None else "")
        + (f", {meta['steps_per_second']:.0f} steps/s" if "steps_per_second" in meta else "")
    )
    print(f"next: `dema data {path}` summarises it; `dema train --model dema --dataset {path}` trains on it")
    return 0


FORMATS = ("d4rl", "minari")


def _collect_minari(spec, args, command: str) -> int:
    """The recipe collected as the D4RL collector does, written as a Minari dataset (minari_writer)."""
    from dema.data.collect.collector import collect
    from dema.data.collect.minari_writer import collect_minari

    def collect_into(path: Path):
        return collect(spec, args.recipe, path, args.steps, args.seed, args.num_envs, args.policy_dir, args.policy,
                       args.vector_mode, False, args.progress, command, next_observations=True)

    dataset_id, folder, meta = collect_minari(spec, args.recipe, args.id, args.out, args.overwrite, collect_into,
                                              args.author, args.author_email)
    print(f"wrote Minari dataset {dataset_id} ({folder}): {meta['transitions']} transitions, {meta['episodes']} "
          f"episodes, return {meta['return_mean']:.1f} ± {meta['return_std']:.1f}, {meta['steps_per_second']:.0f} steps/s")
    print(f"next: `dema data {dataset_id}` or `minari show {dataset_id}` summarises it; "
          f"`dema train --model dema --dataset {dataset_id}` trains on it")
    return 0


def _reference_scores(spec, args) -> int:
    """`dema collect ENV reference-scores`: the v5 reference scores (dema.data.collect.reference)."""
    from dema.data.collect.reference import measure
    from dema.machine import cpu_model

    result = measure(spec, args.ref_episodes, args.num_envs, progress=print)
    print(f"reference scores of {spec.gym_id} ({args.ref_episodes} episodes each, {result['seconds']:.0f} s on "
          f"{cpu_model()}): random {result['ref_min_score']:.1f}, best shipped policy ({result['best_policy']}) "
          f"{result['ref_max_score']:.1f}")
    return 0
