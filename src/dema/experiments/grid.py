"""Experiment grids: a YAML file names datasets x models x seeds (x swept fields) under one protocol.

    name: tiny-check
    description: what the grid measures           # optional
    datasets: [hopper-medium-replay-small]         # ids or paths
    models: [dema, dt]
    seeds: [0, 1]
    protocol: demo                                 # a named protocol (src/dema/presets/protocol-*.json)
    overrides: {schedule.updates: 20, eval.episodes: 2}   # any `dema train` field, named as in config.json
    sweep: {model.context_len: [8, 20]}            # optional: fields crossed with the grid
    smoke: true                                    # optional: a test of the machinery, not an experiment

The grids of the paper's tables and figures ship in the package (`dema/experiments/grids/*.yaml`)
and are named by their file stem (`dema sweep mujoco-main`). Only their records belong in the
project's scientific record, results/ (`Grid.default_results_dir`): a smoke grid's and a user's own
grid file's go under its runs folder unless --results-dir says otherwise. `load_grid` checks everything it can
before any cell runs: keys, models, datasets (known preset, or a path that exists), protocol,
override and sweep fields (they must exist in TrainConfig) and the types of their values; each
problem is one ConfigError naming it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from dema.envs import dataset_name
from dema.errors import ConfigError
from dema.run.config import TrainConfig, available_protocols, find_preset, preset_config

REQUIRED = ("name", "datasets", "models", "seeds", "protocol")
OPTIONAL = ("description", "overrides", "sweep", "smoke")
# fields a grid may not set: they belong to the cell (seed, run name) or to the machine running it
RESERVED = {"seed", "run_name", "runs_dir", "overwrite", "model_name", "protocol", "preset", "progress",
            "threads", "device"}


@dataclass(frozen=True)
class Cell:
    """One run of a grid: a dataset, a model, a seed and the sweep values."""

    dataset: str
    model: str
    seed: int
    variant: tuple[tuple[str, Any], ...]  # ((field, value), ...) of the sweep

    def name(self, protocol: str) -> str:
        """Its run directory name: `<dataset>_<model>_<protocol>_s<seed>[_<field>-<value>...]`."""
        suffix = "".join(f"_{field.split('.')[-1]}-{_short(value)}" for field, value in self.variant)
        return f"{dataset_name(self.dataset)}_{self.model}_{protocol}_s{self.seed}{suffix}"


@dataclass(frozen=True)
class Grid:
    name: str
    datasets: tuple[str, ...]
    models: tuple[str, ...]
    seeds: tuple[int, ...]
    protocol: str
    overrides: dict
    sweep: dict
    description: str = ""
    source: str = ""  # the file it was read from
    smoke: bool = False  # a test of the sweep machinery (tiny-check): its records are no evidence

    @property
    def packaged(self) -> bool:
        return self.source.startswith("dema/experiments/grids/")

    def default_results_dir(self, runs_dir: Path) -> Path:
        """Where the cells' records go when --results-dir is not given: results/ for the reproduction's
        packaged grids; beside the runs (RUNS_DIR/records) for a smoke grid or a user's grid file, so
        that neither lands in the project's scientific record and in `dema report results`."""
        return Path("results") if self.packaged and not self.smoke else runs_dir / "records"

    def cells(self) -> list[Cell]:
        """Every cell, seed-major (a first seed of everything before a second), then dataset, model."""
        fields = list(self.sweep)
        variants = [tuple(zip(fields, values)) for values in itertools.product(*self.sweep.values())] or [()]
        return [Cell(dataset, model, seed, variant)
                for seed in self.seeds for dataset in self.datasets for model in self.models for variant in variants]

    def config(self, cell: Cell, runs_dir: str, device: str = "cpu") -> TrainConfig:
        """The cell's TrainConfig: preset + protocol, then the grid's overrides and the cell's values."""
        base = preset_config(cell.model, cell.dataset, self.protocol)
        data = base.to_dict()
        for field, value in [*self.overrides.items(), *cell.variant]:
            _set_field(data, field, value, where=f"grid {self.name}")
        data.update(seed=cell.seed, runs_dir=runs_dir, run_name=cell.name(self.protocol), threads=1,
                    progress=False, device=device)
        config = TrainConfig.from_dict(data)
        config.validate()
        return config

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "datasets": list(self.datasets),
                "models": list(self.models), "seeds": list(self.seeds), "protocol": self.protocol,
                "overrides": self.overrides, "sweep": self.sweep, "smoke": self.smoke}


def available_grids() -> list[str]:
    return sorted(p.name[:-5] for p in (resources.files("dema.experiments") / "grids").iterdir()
                  if p.name.endswith(".yaml"))


def load_grid(name_or_path: str) -> Grid:
    """A grid from a YAML file, or a packaged grid by name; ConfigError on any problem."""
    try:
        import yaml
    except ImportError:  # the main job's install has no PyYAML; grids come with the sweep extra
        raise ConfigError('reading a grid needs PyYAML, which the sweep extra installs: pip install -e ".[sweep]" '
                          '(or pip install pyyaml)') from None

    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"no grid file {path}")
        text, source = path.read_text(), str(path)
    else:
        packaged = resources.files("dema.experiments") / "grids" / f"{name_or_path}.yaml"
        if not packaged.is_file():
            raise ConfigError(f"unknown grid {name_or_path!r}: not a file, and the packaged grids are "
                              f"{', '.join(available_grids())}")
        text, source = packaged.read_text(), f"dema/experiments/grids/{name_or_path}.yaml"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_grid(data, source)


def parse_grid(data: Any, source: str = "grid") -> Grid:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a grid is a mapping with keys {', '.join(REQUIRED)}")
    unknown = sorted(set(data) - set(REQUIRED) - set(OPTIONAL))
    missing = [k for k in REQUIRED if k not in data]
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; a grid has {', '.join(REQUIRED + OPTIONAL)}")
    if missing:
        raise ConfigError(f"{source}: missing key(s) {missing}")
    grid = Grid(
        name=_typed(data["name"], str, source, "name"),
        datasets=tuple(_list_of(data["datasets"], str, source, "datasets")),
        models=tuple(_list_of(data["models"], str, source, "models")),
        seeds=tuple(_list_of(data["seeds"], int, source, "seeds")),
        protocol=_typed(data["protocol"], str, source, "protocol"),
        overrides=dict(_typed(data.get("overrides") or {}, dict, source, "overrides")),
        sweep={k: list(_list_of(v, object, source, f"sweep.{k}"))
               for k, v in _typed(data.get("sweep") or {}, dict, source, "sweep").items()},
        description=str(data.get("description") or ""),
        source=source,
        smoke=_typed(data.get("smoke", False), bool, source, "smoke"),
    )
    _check(grid, source)
    return grid


def _check(grid: Grid, source: str) -> None:
    from dema.models import MODELS

    if grid.protocol not in available_protocols():
        raise ConfigError(f"{source}: unknown protocol {grid.protocol!r}; known: {', '.join(available_protocols())}")
    for model in grid.models:
        if model not in MODELS:
            raise ConfigError(f"{source}: unknown model {model!r}; known: {', '.join(MODELS)}")
    for dataset in grid.datasets:
        find_preset(dataset)  # ConfigError naming the id and the known ones
    for field in [*grid.overrides, *grid.sweep]:
        if field.split(".")[0] in RESERVED:
            raise ConfigError(f"{source}: {field!r} cannot be set by a grid (it is per cell or per machine)")
    if len(set(grid.seeds)) != len(grid.seeds):
        raise ConfigError(f"{source}: seeds repeat: {list(grid.seeds)}")
    for cell in grid.cells():  # every override and swept value must make a valid config
        grid.config(cell, runs_dir="runs")


def _set_field(data: dict, field: str, value: Any, where: str) -> None:
    """data["schedule"]["updates"] = value for field "schedule.updates", type-checked."""
    *sections, key = field.split(".")
    target = data
    for section in sections:
        if not isinstance(target.get(section), dict):
            raise ConfigError(f"{where}: unknown field {field!r} (no section {section!r}; sections: "
                              f"{', '.join(k for k, v in data.items() if isinstance(v, dict))})")
        target = target[section]
    if key not in target:
        raise ConfigError(f"{where}: unknown field {field!r}; {'.'.join(sections) or 'the config'} has "
                          f"{', '.join(sorted(target))}")
    target[key] = _coerce(target[key], value, field, where)


def _coerce(current: Any, value: Any, field: str, where: str) -> Any:
    """`value` if it has the type of the field's current value (ints are accepted for floats)."""
    wrong = ConfigError(f"{where}: {field} must be {type(current).__name__}, got {value!r}")
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise wrong
    elif isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
    elif isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong
        value = float(value)
    elif isinstance(current, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise wrong
        value = list(value)
    elif isinstance(current, str) and not isinstance(value, str):
        raise wrong
    return value


def _typed(value: Any, kind: type, source: str, key: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{source}: {key} must be a {kind.__name__}, got {value!r}")
    return value


def _list_of(value: Any, kind: type, source: str, key: str) -> list:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{source}: {key} must be a non-empty list, got {value!r}")
    for item in value:
        _typed(item, kind, source, key)
    return value


def _short(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value).replace("/", "-")
