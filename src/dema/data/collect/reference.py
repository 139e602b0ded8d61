"""Reference scores of a MuJoCo v5 environment, measured here: `dema collect ENV reference-scores`.

D4RL's reference scores (dema.envs: `ref_min_score`, `ref_max_score`) were measured in the v2
environments (mujoco-py) with D4RL's own policies; no one has published them for Gymnasium's v5
(Minari issues 306, 323, 325). This measures, in the v5 environment dema collects in, the mean
return of uniform random actions (the "random" reference) and of every behaviour policy dema ships,
acted as the recipes act them (stochastic); the best of those is the "expert" reference. These are
the `measured_ref_scores` of dema.envs and the reference scores of the Minari datasets dema writes.

Each policy plays exactly `episodes` whole episodes in `num_envs` vectorised copies: copy i plays
its share of the episodes one after the other, every one to its end (termination or the 1000-step
limit), so short episodes are not over-sampled. Copy i is reset with seed `seed + i`; the policies'
noise comes from `seed`.
"""

from __future__ import annotations

import time

import numpy as np

from dema.data.collect.recipes import POLICY_ENV_NAMES, default_policy_dir, resolve_policy
from dema.data.collect.rollout import make_vec_env
from dema.envs import EnvSpec
from dema.errors import ConfigError

REF_SEED = 10_000  # reset seeds apart from every collection's (0, 1000, ...)


def episode_returns(spec: EnvSpec, policy, episodes: int, num_envs: int, seed: int = REF_SEED,
                    deterministic: bool = False) -> np.ndarray:
    """(episodes,) returns of `policy` in `spec.gym_id`, whole episodes (see the module docstring)."""
    num_envs = max(1, min(num_envs, episodes))
    quota = np.full(num_envs, episodes // num_envs)
    quota[: episodes % num_envs] += 1
    rng = np.random.default_rng(seed)
    envs = make_vec_env(spec.gym_id, num_envs)  # SAME_STEP autoreset: a finished copy starts its next episode
    returns: list[list[float]] = [[] for _ in range(num_envs)]
    try:
        low, high = envs.single_action_space.low, envs.single_action_space.high
        obs, _ = envs.reset(seed=seed)
        running = np.zeros(num_envs)
        t = np.zeros(num_envs, dtype=np.int64)
        while any(len(r) < q for r, q in zip(returns, quota)):
            action = np.clip(policy.act(obs, t, rng, deterministic), low, high)
            obs, reward, terminated, truncated, _ = envs.step(action.astype(np.float32))
            running += reward
            t += 1
            for i in np.flatnonzero(terminated | truncated):
                if len(returns[i]) < quota[i]:
                    returns[i].append(float(running[i]))
                running[i], t[i] = 0.0, 0
    finally:
        envs.close()
    return np.array([r for per_copy in returns for r in per_copy])


def measure(spec: EnvSpec, episodes: int = 100, num_envs: int = 10, seed: int = REF_SEED, progress=print) -> dict:
    """The random policy's and every shipped behaviour policy's mean return (stochastic, as the recipes
    act), the best of them, and how long it took; `progress` gets one line per policy."""
    if spec.name not in POLICY_ENV_NAMES:
        raise ConfigError(f"reference scores are measured for {', '.join(POLICY_ENV_NAMES)} (dema ships behaviour "
                          f"policies for those); maze2d's come with its collection, Atari's are DT's")
    if episodes < 1:
        raise ConfigError(f"--ref-episodes must be at least 1, got {episodes}")
    folder = default_policy_dir()
    algos = ["random"] + sorted(p.name.split("-")[0] for p in folder.glob(f"*-{POLICY_ENV_NAMES[spec.name]}.npz"))
    rows, start = {}, time.perf_counter()
    for algo in algos:
        began = time.perf_counter()
        returns = episode_returns(spec, resolve_policy(spec, algo), episodes, num_envs, seed)
        rows[algo] = {"mean": float(returns.mean()), "std": float(returns.std()), "min": float(returns.min()),
                      "max": float(returns.max()), "episodes": int(len(returns)),
                      "seconds": round(time.perf_counter() - began, 1)}
        progress(f"{spec.gym_id} {algo:8s} {rows[algo]['mean']:9.1f} ± {rows[algo]['std']:7.1f} "
                 f"({len(returns)} episodes, {rows[algo]['seconds']:.0f} s)")
    best = max((a for a in algos if a != "random"), key=lambda a: rows[a]["mean"])
    # ARS's linear policies have no noise: "stochastic" acting is deterministic for them
    mode = "deterministic" if getattr(resolve_policy(spec, best), "kind", "") == "linear" else "stochastic"
    return {"env": spec.gym_id, "episodes": episodes, "seed": seed, "num_envs": num_envs,
            "policies": rows, "ref_min_score": rows["random"]["mean"], "ref_max_score": rows[best]["mean"],
            "best_policy": f"{best}-{POLICY_ENV_NAMES[spec.name]} {mode}",
            "seconds": round(time.perf_counter() - start, 1)}
