"""`sac-replay`: D4RL's medium-replay recipe, faithfully: train SAC until the medium level and keep
its whole replay buffer.

Run: Stable-Baselines3 SAC with its default hyper-parameters (256x256 networks, lr 3e-4, batch 256,
one gradient step per environment step) except `learning_starts` (10,000 random steps, as the
SAC replay buffers we compare with used) and a buffer as large as the step budget (nothing is overwritten),
one torch thread. Every `eval_every` steps (10k) the deterministic policy is scored on
`eval_episodes` (3) episodes; the run stops at the first evaluation at or above the medium level,
by default a third of D4RL's expert return ("medium = about 1/3 of expert"), or at the budget.

Long (hours of CPU): it runs in the foreground with a progress bar and one log line per
evaluation; start it in the background (scripts/collect_sac_replay.sh). After every evaluation
a checkpoint is written to the work folder (default `OUT.work/`): `ckpt-<steps>/` holds the SB3
model zip and the buffer's arrays as `.npz` (no pickles), and `state.json`, replaced atomically
last, names the newest complete checkpoint. A re-run of the same command resumes from it; the
episode that was running at the interruption is cut there (timeouts=1), because the simulator
state is not saved. The D4RL file is written when the run stops; the work folder is then removed.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dema.data.collect.writer import check_writable, write_hdf5
from dema.data.episodes import collection_stats
from dema.envs import EnvSpec
from dema.errors import ConfigError
from dema.files import atomic_write
from dema.provenance import versions

LEARNING_STARTS = 10_000
EVAL_EVERY = 10_000
EVAL_EPISODES = 3
_BUFFER_KEYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def _import_sb3():
    try:
        import stable_baselines3
    except ImportError as exc:
        raise ConfigError("the sac-replay recipe trains SAC with Stable-Baselines3: pip install 'dema[sac]'") from exc
    return stable_baselines3


def _evaluate(model, env_id: str, episodes: int, seed: int) -> float:
    """Mean return of the deterministic policy over a few episodes (reset seeds seed, seed+1, ...)."""
    import gymnasium as gym

    env = gym.make(env_id)
    returns = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def _save_checkpoint(work: Path, model, state: dict) -> None:
    """ckpt-<steps>/ (model zip + buffer arrays), then state.json atomically, then older checkpoints go."""
    steps = state["steps"]
    ckpt = work / f"ckpt-{steps}"
    ckpt.mkdir(parents=True, exist_ok=True)
    model.save(ckpt / "model.zip")
    buf = model.replay_buffer
    np.savez(ckpt / "buffer.npz", pos=buf.pos, full=buf.full,
             **{k: getattr(buf, k)[: buf.pos if not buf.full else buf.buffer_size] for k in _BUFFER_KEYS})
    state = {**state, "checkpoint": ckpt.name}
    atomic_write(work / "state.json", lambda tmp: tmp.write_text(json.dumps(state, indent=1)))
    for old in work.glob("ckpt-*"):
        if old.name != ckpt.name:
            shutil.rmtree(old, ignore_errors=True)


def _restore_buffer(model, path: Path) -> None:
    buf = model.replay_buffer
    with np.load(path) as z:
        n = len(z["rewards"])
        for key in _BUFFER_KEYS:
            getattr(buf, key)[:n] = z[key]
        buf.pos, buf.full = int(z["pos"]), bool(z["full"])
    if n:
        # The simulator state was not saved: the running episode ends here, as a time-limit cut
        # (done and timeout: SAC still bootstraps through it, the D4RL file marks timeouts=1).
        buf.dones[n - 1] = True
        buf.timeouts[n - 1] = True


def buffer_to_d4rl(buf) -> dict[str, np.ndarray]:
    """SB3 ReplayBuffer (single env) -> D4RL arrays; the last, unfinished episode gets timeouts=1."""
    n = buf.buffer_size if buf.full else buf.pos
    dones = buf.dones[:n, 0].astype(bool)
    timeouts = buf.timeouts[:n, 0].astype(bool)
    data = {
        "observations": buf.observations[:n, 0].astype(np.float32),
        "actions": buf.actions[:n, 0].astype(np.float32),
        "rewards": buf.rewards[:n, 0].astype(np.float32),
        "terminals": dones & ~timeouts,
        "timeouts": timeouts.copy(),
        "next_observations": buf.next_observations[:n, 0].astype(np.float32),
    }
    if n and not (data["terminals"][-1] or data["timeouts"][-1]):
        data["timeouts"][-1] = True
    return data


def collect_sac_replay(
    spec: EnvSpec,
    out: Path,
    seed: int = 0,
    budget: int = 3_000_000,
    work_dir: Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    command: str = "",
    medium_return: float | None = None,
    learning_starts: int = LEARNING_STARTS,
    eval_every: int = EVAL_EVERY,
    eval_episodes: int = EVAL_EPISODES,
) -> tuple[Path, dict]:
    """Train SAC (resuming from work_dir if a checkpoint is there) and write its replay buffer."""
    sb3 = _import_sb3()
    import gymnasium as gym
    import torch

    out = Path(out)
    check_writable(out, overwrite)
    if budget <= 0 or eval_every <= 0:
        raise ConfigError("--sac-budget and the evaluation interval must be positive")
    torch.set_num_threads(1)
    medium = medium_return if medium_return is not None else spec.ref_max_score / 3
    work = Path(work_dir) if work_dir else out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    model, state = _start_or_resume(sb3, gym.make(spec.gym_id), spec, work, seed, budget, medium, learning_starts)

    bar = tqdm(total=budget, initial=state["steps"], desc=f"{spec.name}-sac-replay", unit="step",
               disable=not progress, smoothing=0.05)

    class _Progress(sb3.common.callbacks.BaseCallback):
        def _on_step(self) -> bool:
            bar.update(1)
            return True

    start = time.perf_counter()
    while state["steps"] < budget and not state["reached_medium"]:
        chunk = min(eval_every, budget - state["steps"])
        model.learn(chunk, reset_num_timesteps=False, callback=_Progress(), progress_bar=False)
        state["steps"] = int(model.num_timesteps)
        score = _evaluate(model, spec.gym_id, eval_episodes, seed=10_000 + state["steps"])
        state["eval"].append([state["steps"], score])
        state["reached_medium"] = score >= medium
        bar.write(f"{spec.name} sac-replay: {state['steps']} steps, evaluation {score:.1f} "
                  f"(normalised {spec.normalize(score):.1f}; medium level {medium:.1f})")
        _save_checkpoint(work, model, state)
    bar.close()
    seconds = time.perf_counter() - start

    data = buffer_to_d4rl(model.replay_buffer)
    meta = _metadata(spec, data, state, seed, learning_starts, medium, seconds, command)
    write_hdf5(out, data, meta, overwrite=overwrite)
    shutil.rmtree(work, ignore_errors=True)
    return out, meta


def _start_or_resume(sb3, env, spec: EnvSpec, work: Path, seed: int, budget: int, medium: float,
                     learning_starts: int):
    """A new SAC run, or the one checkpointed in `work` (refused when its settings differ)."""
    state_path = work / "state.json"
    if state_path.exists():
        state = json.loads(state_path.read_text())
        if state["seed"] != seed or state["env_id"] != spec.gym_id or state["budget"] != budget:
            raise ConfigError(f"{work} holds a run with other settings ({state['env_id']}, seed {state['seed']}, "
                              f"budget {state['budget']}); use another --work-dir or delete it")
        model = sb3.SAC.load(work / state["checkpoint"] / "model.zip", env=env, device="cpu")
        _restore_buffer(model, work / state["checkpoint"] / "buffer.npz")
        print(f"resuming from {work / state['checkpoint']} at {state['steps']} steps")
    else:
        state = {"env_id": spec.gym_id, "seed": seed, "budget": budget, "steps": 0, "eval": [],
                 "medium_return": medium, "reached_medium": False, "interruptions": 0}
        model = sb3.SAC("MlpPolicy", env, buffer_size=budget, learning_starts=learning_starts, seed=seed,
                        device="cpu", verbose=0)
    state["interruptions"] += int(state["steps"] > 0)
    return model, state


def _metadata(spec: EnvSpec, data: dict, state: dict, seed: int, learning_starts: int, medium: float,
              seconds: float, command: str) -> dict:
    stats = collection_stats(data, spec.normalize)
    stopped = "medium level reached" if state["reached_medium"] else "step budget reached BELOW the medium level"
    return {
        "env_id": spec.gym_id,
        "env_name": spec.name,
        "recipe": "sac-replay",
        "algorithm": f"SAC (stable-baselines3 defaults, learning_starts {learning_starts}), seed {seed}",
        "policy": "the whole replay buffer of one SAC run (D4RL medium-replay recipe)",
        "seed": seed,
        "steps": stats["transitions"],
        "stopped": stopped,
        "medium_return": medium,
        "eval": state["eval"],
        "interruptions": state["interruptions"],
        "episode_stats": stats,
        **stats,
        "ref_min_score": spec.ref_min_score,
        "ref_max_score": spec.ref_max_score,
        "collect_seconds_last_session": round(seconds, 1),
        "versions": versions(),
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
