"""`dema bench collect`: collection speed (environment steps per second) by vector mode and number of copies.

Runs the medium policy of an environment (stochastic, as the `medium` recipe does) through
`dema.data.collect.rollout.rollout` for a fixed number of steps per configuration, on one BLAS
thread (as `dema collect` sets), and prints a markdown table (docs/DATASETS.md); the load average is
printed with it because the cores are shared.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable


def collect_speed(env: str, steps: int, num_envs: list[int], modes: list[str],
                  emit: Callable[[str], None] = print) -> None:
    """Time `steps` steps of each (mode, copies) and emit the table line by line, as it is measured."""
    from dema.data.collect.recipes import LEVELS, default_policy_dir, resolve_policy
    from dema.data.collect.rollout import Stage, rollout
    from dema.envs import env_spec

    spec = env_spec(env)
    choice = LEVELS[spec.name]["medium"]
    policy = resolve_policy(spec, choice.algo, default_policy_dir())
    emit(f"{spec.gym_id}, {policy.name} stochastic, {steps} steps per row; {os.cpu_count()} CPUs "
         f"({platform.processor() or platform.machine()}), load average before: {os.getloadavg()[0]:.1f}")
    emit("| vector mode | num envs | steps/s |\n| --- | --- | --- |")
    for mode in modes:
        for n in num_envs:
            stage = Stage("speed", policy, steps, choice.deterministic, choice.noise_std)
            start = time.perf_counter()
            rollout(spec.gym_id, stage, n, seed=0, vector_mode=mode)
            rate = steps / (time.perf_counter() - start)
            emit(f"| {mode} | {n} | {rate:,.0f} |")
    emit(f"load average after: {os.getloadavg()[0]:.1f}")
