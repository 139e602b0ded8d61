"""`dema collect GAME RECIPE ...` (dema.data.collect.cli) for an Atari game: the arguments -> a recipe."""

from __future__ import annotations

from pathlib import Path

from dema.data.collect.atari.scripted import DEFAULT_LEVELS, collect_scripted
from dema.envs import game_name
from dema.errors import ConfigError

RECIPES = ("scripted", "random", "replay")
DEFAULT_STEPS = 100_000


def collect_from_args(args, command: str) -> tuple[Path, dict]:
    """The DQN-replay folder OUT/<Game>/ of the recipe `args.recipe`, and what the collection recorded."""
    name = game_name(args.env)
    if args.recipe not in RECIPES:
        raise ConfigError(f"unknown Atari recipe {args.recipe!r}; choose one of {', '.join(RECIPES)}")
    out = args.out or Path("datasets") / "atari"
    steps = DEFAULT_STEPS if args.steps is None else args.steps
    if args.capacity < 1:
        raise ConfigError(f"--capacity must be at least 1, got {args.capacity}")
    if args.recipe == "replay":
        from dema.data.collect.atari.replay_recipe import collect_replay

        return collect_replay(name, out, steps, args.seed, args.overwrite, args.capacity, command,
                              device=getattr(args, "device", "auto"))
    levels = tuple(args.epsilons) if args.epsilons else (DEFAULT_LEVELS if args.recipe == "scripted" else (1.0,))
    return collect_scripted(name, out, steps, args.seed, levels, args.overwrite, args.capacity, command=command,
                            recipe=args.recipe)
