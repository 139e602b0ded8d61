"""A dataset's card: `dema data ID_OR_PATH --card DIR` writes DIR/<name>.md and DIR/<name>.png.

The card says what a dataset is, from the data themselves and what their files record: transitions,
episodes and how they end, the distributions of episode lengths and returns (raw and normalised,
with the reference scores named), the behaviour policies and their shares when recorded, the
environment and its version, the checksum of the arrays (the sha256 run records name), the command
that made it, and how it differs from the D4RL dataset of the same name. The PNG shows the returns
and lengths of the episodes. Nothing is copied from elsewhere by hand, so a card can be written again
for the same data and comes out the same (but for the date a file records).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dema.data.dataset import OfflineDataset
from dema.envs import EnvSpec, dataset_name, parse_dataset
from dema.files import atomic_write

# D4RL v2's sizes (transitions) of its MuJoCo datasets, and where D4RL collected them (its paper and
# infos): Gym's v3 environments on mujoco-py (MuJoCo 2.0), its own SAC agents at each level.
D4RL_SIZES = {"random": 1_000_000, "medium": 1_000_000, "expert": 1_000_000, "medium-expert": 2_000_000,
              "medium-replay": {"hopper": 402_000, "halfcheetah": 202_000, "walker2d": 302_000}}


def write_card(dataset: OfflineDataset, text: str, folder: str | Path, spec: EnvSpec | None,
               references: str | None) -> tuple[Path, Path]:
    """Write the card of `dataset` (named `text` by the user) into `folder`; (markdown, png)."""
    from dema.data.recorded_env import reference_note

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = dataset_name(text)
    meta = collection_record(dataset)
    returns = dataset.episode_returns()
    bounds = dataset.episode_bounds()
    lengths = bounds[:, 1] - bounds[:, 0]
    ends = bounds[:, 1] - 1
    terminal = int(dataset.terminals[ends].sum())
    normalised = np.array([spec.normalize(r) for r in returns]) if spec is not None else None
    lines = [f"# {name}", "",
             f"`{text}` ({dataset.format}): {len(dataset):,} transitions in {len(bounds):,} episodes "
             f"({terminal:,} ended by the task, {len(bounds) - terminal:,} by a time limit or the end of the data).", "",
             "| | mean | std | min | 25% | median | 75% | max |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
             _row("episode length (steps)", lengths, 0), _row("episode return", returns, 1)]
    if normalised is not None:
        lines.append(_row("normalised return", normalised, 1))
    lines += ["", f"![episode returns and lengths of {name}]({name}.png)", ""]
    lines += _facts(dataset, spec, meta, references, reference_note)
    lines += ["", "## How it differs from D4RL's dataset of the same name", "", difference_from_d4rl(name, spec, meta), ""]
    md = folder / f"{name}.md"
    png = folder / f"{name}.png"
    atomic_write(md, lambda p: p.write_text("\n".join(lines)))
    atomic_write(png, lambda p: _figure(p, name, returns, normalised, lengths, spec))
    return md, png


def _row(label: str, values: np.ndarray, digits: int) -> str:
    q = np.percentile(values, [0, 25, 50, 75, 100])
    cells = [values.mean(), values.std(), *q]
    return f"| {label} | " + " | ".join(f"{v:,.{digits}f}" for v in cells) + " |"


def collection_record(dataset: OfflineDataset) -> dict:
    """What dema recorded when it collected the dataset: a D4RL file's metadata attributes, a Minari
    dataset's `dema_collect`, an Atari folder's dema_collect.json; {} for data dema did not collect."""
    meta = dict(dataset.metadata.get("dema_collect") or dataset.metadata)
    if dataset.format == "dqn-replay" and dataset.source:
        for folder in Path(dataset.source).parents:
            if (folder / "dema_collect.json").is_file():
                return {**json.loads((folder / "dema_collect.json").read_text()), **meta}
    for key in ("stages", "versions", "episode_stats"):
        if isinstance(meta.get(key), str):
            try:
                meta[key] = json.loads(meta[key])
            except ValueError:
                pass
    return meta


def behaviour_policies(meta: dict) -> list[tuple[str, int]]:
    """(policy, transitions) of each stage of the collection, when recorded."""
    if isinstance(meta.get("stages"), list):
        return [(str(s.get("label")), int(s.get("steps", 0))) for s in meta["stages"] if isinstance(s, dict)]
    if isinstance(meta.get("levels"), list):  # Atari scripted: one level per epsilon
        return [(f"{meta.get('recipe', 'scripted')} controller, epsilon {lv.get('epsilon')}", int(lv.get("transitions", 0)))
                for lv in meta["levels"] if isinstance(lv, dict)]
    return []


def _facts(dataset: OfflineDataset, spec: EnvSpec | None, meta: dict, references: str | None, note) -> list[str]:
    versions = meta.get("versions") if isinstance(meta.get("versions"), dict) else {}
    simulator = ", ".join(f"{k} {versions[k]}" for k in ("gymnasium", "mujoco", "gymnasium-robotics", "ale-py")
                          if k in versions)
    lines = ["## What it is", ""]
    if spec is not None:
        lines.append(f"- Environment: `{spec.gym_id.split(':')[-1]}`" + (f" ({simulator})" if simulator else "")
                     + f", episodes of up to {spec.max_episode_steps:,} steps.")
        lines.append(f"- Normalised with {note(references or 'table')}: {_exact(spec.ref_min_score)} is 0, "
                     f"{_exact(spec.ref_max_score)} is 100.")
    else:
        lines.append(f"- Environment: not known to dema ({dataset.env_name or 'none recorded'}); returns are not normalised.")
    policies = behaviour_policies(meta)
    if policies:
        total = sum(n for _, n in policies) or 1
        lines.append("- Behaviour policies, in the order collected: "
                     + "; ".join(f"{label} ({n:,} transitions, {100 * n / total:.0f}%)" for label, n in policies) + ".")
    elif meta.get("algorithm_name") or meta.get("policy"):
        lines.append(f"- Behaviour policy: {meta.get('algorithm_name') or meta.get('policy')}.")
    else:
        lines.append("- Behaviour policies: not recorded.")
    lines.append(f"- Checksum: sha256 of the arrays training reads `{dataset.content_sha256()}` "
                 "(dema.data.dataset.OfflineDataset.content_sha256; run records name the same).")
    command = meta.get("command")
    made = f"`{command}`" if command else "not recorded"
    if meta.get("created"):
        made += f", {meta['created']}"
    lines.append(f"- Made by: {made}" + (f"; dema {versions['dema']}" if versions.get("dema") else "") + ".")
    return lines


def _exact(value: float) -> str:
    """A reference score as the table or the file holds it: -20.272305, 3000."""
    return f"{value:g}" if float(value).is_integer() else repr(float(value))


def difference_from_d4rl(name: str, spec: EnvSpec | None, meta: dict) -> str:
    """A paragraph: what D4RL's dataset of this name was, and what this one is instead."""
    ref = parse_dataset(name)
    recipe = meta.get("recipe") or ""
    if spec is not None and spec.atari:
        return ("D4RL has no Atari data; the paper's Atari datasets are DT's 1% samples of DQN-replay (500,000 "
                "transitions of the replay buffers of a DQN agent's training run, from random to trained play). This one "
                f"is `{meta.get('recipe', '?')}`: a controller reading the console RAM, its actions replaced by random ones "
                "at several epsilon levels (docs/DATASETS.md), single 84x84 frames stored in dopamine's layout.")
    if spec is not None and spec.name.startswith("maze2d"):
        return ("D4RL's maze2d files are one long run of a waypoint controller in mujoco-py's maze whose goal resets are "
                "marked as timeouts; this one is collected in gymnasium-robotics' PointMaze (v3) with D4RL's controller "
                "gains and noise, every environment episode (random start and goal) one episode ending with a timeout, "
                "and the goal in the observation (x, y, vx, vy, goal_x, goal_y). Reference scores are computed here "
                "the way D4RL computed its own (random actions, the noiseless controller), not D4RL's numbers.")
    if spec is not None and spec.name in ("hopper", "halfcheetah", "walker2d"):
        level = ref.base[len(spec.name) + 1:] if ref.base.startswith(spec.name + "-") else recipe
        level = level.split("-v")[0]
        size = D4RL_SIZES.get(level)
        size = size.get(spec.name) if isinstance(size, dict) else size
        text = (f"D4RL's `{spec.name}-{level}-v2` was collected in Gym's {spec.gym_id.replace('-v5', '-v3')} on mujoco-py "
                "(MuJoCo 2.0) with D4RL's own SAC agents" + (f", {size:,} transitions" if size else "") + ". This one is "
                f"collected in Gymnasium's {spec.gym_id} (the MuJoCo bindings, another simulator version: returns do not "
                "compare one to one) with the behaviour policies dema ships (SB3 agents of rl-trained-agents) at the "
                "level the recipe names, so its returns and state distribution are its own.")
        if meta.get("approximation"):
            text += f" It is an {meta['approximation']}."
        if size and meta.get("transitions") and int(meta["transitions"]) != size:
            text += f" It has {int(meta['transitions']):,} transitions."
        return text
    return "dema does not know a D4RL dataset of this name."


def _figure(path: Path, name: str, returns: np.ndarray, normalised: np.ndarray | None, lengths: np.ndarray,
            spec: EnvSpec | None) -> None:
    """Two small histograms: episode returns (normalised on the top axis) and episode lengths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(7.0, 2.6), dpi=80)
    left.hist(returns, bins=40, color="#4c72b0")
    left.set_xlabel("episode return")
    left.set_ylabel("episodes")
    if normalised is not None and spec is not None and spec.ref_max_score != spec.ref_min_score:
        top = left.secondary_xaxis("top", functions=(spec.normalize, lambda n: spec.ref_min_score + n / 100.0
                                                     * (spec.ref_max_score - spec.ref_min_score)))
        top.set_xlabel("normalised", fontsize=8)
    right.hist(lengths, bins=40, color="#55a868")
    right.set_xlabel("episode length (steps)")
    fig.suptitle(name, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
