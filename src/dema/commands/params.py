"""`dema params`: parameter counts of every model at every paper preset.

Reads off the paper's claim that DeMa has about a quarter of DT's parameters on MuJoCo and about
30% fewer on Atari. Sizes of the data per preset: MuJoCo from dema.envs, maze2d (D4RL: 4-d
observation, 2-d action), Atari (4 stacked 84x84 frames; Breakout's 4 actions).
"""

from __future__ import annotations

import json
import textwrap

from dema.cli_options import command_parser
from dema.envs import ATARI_ACTIONS, ENVS
from dema.models import MODELS, PRESET_DATASETS, build_policy, count_parameters, model_config

MAZE2D_SIZES = (4, 2)
ATARI_FRAMES = (4, 84, 84)


def data_sizes(preset: str) -> tuple[int | tuple[int, ...], int, bool]:
    """-> (state shape, action size or count, discrete) of a preset's data."""
    if preset == "atari":
        return ATARI_FRAMES, ATARI_ACTIONS["Breakout"], True
    if preset.startswith("maze2d"):
        return MAZE2D_SIZES[0], MAZE2D_SIZES[1], False
    spec = ENVS[preset.split("-")[0]]
    return spec.obs_dim, spec.act_dim, False


def parameter_table() -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for model in MODELS:
        table[model] = {}
        for preset in PRESET_DATASETS:
            state, act, discrete = data_sizes(preset)
            policy = build_policy(model_config(model, preset), state, act, discrete)
            table[model][preset] = count_parameters(policy)
    return table


def main(argv: list[str]) -> int:
    names = [textwrap.fill(f"{what}: {', '.join(names)}", 100, subsequent_indent="  ", break_on_hyphens=False)
             for what, names in (("models", MODELS), ("presets", PRESET_DATASETS))]
    parser = command_parser("dema params", "\n\n".join([__doc__.splitlines()[0], *names]))
    parser.add_argument("--json", action="flag", help="print {model: {preset: parameter_count}}")
    args = parser.parse_args(argv)
    table = parameter_table()
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    width = max(map(len, PRESET_DATASETS))
    print(f"{'preset':<{width}}  " + "  ".join(f"{m:>10}" for m in MODELS) + "  dema/dt")
    for preset in PRESET_DATASETS:
        counts = [table[m][preset] for m in MODELS]
        ratio = table["dema"][preset] / table["dt"][preset]
        print(f"{preset:<{width}}  " + "  ".join(f"{c:>10,}" for c in counts) + f"  {ratio:7.2f}")
    return 0
