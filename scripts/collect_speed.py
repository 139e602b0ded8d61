"""Measure collection speed (env steps per second) by vector mode and number of env copies.

Runs the medium policy of an environment (stochastic, as the `medium` recipe does) through
`dema.data.collect.rollout.rollout` for a fixed number of steps per configuration, one BLAS thread
(as `dema collect` sets), and prints a markdown table; the load average is printed with it because
the cores are shared.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/collect_speed.py --env hopper --steps 40000
"""

from __future__ import annotations

import argparse
import os
import platform
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from dema.data.collect.recipes import LEVELS, default_policy_dir, resolve_policy  # noqa: E402
from dema.data.collect.rollout import Stage, rollout  # noqa: E402
from dema.envs import env_spec  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="hopper")
    p.add_argument("--steps", type=int, default=40_000)
    p.add_argument("--num-envs", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    p.add_argument("--modes", nargs="+", default=["sync", "async"])
    args = p.parse_args()
    spec = env_spec(args.env)
    choice = LEVELS[spec.name]["medium"]
    policy = resolve_policy(spec, choice.algo, default_policy_dir())
    print(f"{spec.gym_id}, {policy.name} stochastic, {args.steps} steps per row; {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), load average before: {os.getloadavg()[0]:.1f}")
    print("| vector mode | num envs | steps/s |\n| --- | --- | --- |")
    for mode in args.modes:
        for n in args.num_envs:
            stage = Stage("speed", policy, args.steps, choice.deterministic, choice.noise_std)
            start = time.perf_counter()
            rollout(spec.gym_id, stage, n, seed=0, vector_mode=mode)
            rate = args.steps / (time.perf_counter() - start)
            print(f"| {mode} | {n} | {rate:,.0f} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
