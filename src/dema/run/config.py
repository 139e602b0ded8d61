"""The training configuration: typed dataclasses, per-dataset presets, named protocols.

A run is described by ONE `TrainConfig` (model, data, optimiser, schedule, evaluation), resolved
in three layers, each recorded in the saved config.json:

1. the preset of the dataset (`dema.envs.PRESETS`): the model's sizes (`dema.models.model_config`),
   the learning rate (1e-4 or 1e-3 per dataset) and the environment's return-to-go scale; the
   paper's other settings (AdamW, weight decay 1e-4, linear warm-up 10k, grad-norm clip 0.25,
   batch 64, 100k updates, 100 evaluation episodes) are the dataclasses' defaults below;
2. a named protocol (`presets/protocol-<name>.json`): "paper" changes nothing and is the default;
   "cpu-short" is the paper's preset with fewer updates, a proportionally shorter warm-up and fewer
   evaluation episodes, for machines without a GPU. A protocol is never applied silently: its name
   is part of the run name and of config.json;
3. command-line overrides of any field (`--optim.lr 3e-4`, `--model.n-layer 2`).

The context length K lives in ONE place, `model.context_len`: the sampler's windows and the
acting window both read it (the model needs it anyway for acting), so they cannot disagree.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from dema.envs import ENVS, PRESETS, dataset_name, preset_named
from dema.envs import preset as dataset_preset
from dema.errors import ConfigError
from dema.models import ModelConfig


@dataclass
class DataConfig:
    """What to train on."""

    dataset: str = "hopper-medium"
    """dataset id (collected under datasets/ or bundled) or a path to a dataset file"""
    reward_scale: float = 1000.0
    """returns-to-go are divided by this (the paper: 1000 on MuJoCo)"""
    delayed: bool = False
    """sparse-reward setting: each episode's rewards summed onto its last step; when acting the
    return-to-go stays at the target"""
    max_transitions: int = 0
    """read at most this many transitions (whole episodes); on a DQN-replay game folder they are
    sampled as Decision Transformer's create_dataset does (uniform over buffers: DT's 1% is 500000);
    0 reads everything"""


@dataclass
class OptimConfig:
    """AdamW with a linear warm-up, as the paper and Decision Transformer's gym code."""

    lr: float = 1e-4
    """peak learning rate"""
    weight_decay: float = 1e-4
    """AdamW weight decay (applied to every parameter, as in DT's gym code)"""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas"""
    warmup_steps: int = 10_000
    """linear warm-up from lr/warmup_steps to lr over this many updates, then constant (or decaying)"""
    decay_steps: int = 0
    """cosine decay of the lr after the warm-up, reaching min_lr_ratio * lr at this update and staying
    there (DT's Atari schedule); 0 keeps the lr constant after the warm-up"""
    min_lr_ratio: float = 0.1
    """the floor of the cosine decay, as a fraction of lr"""
    decay_weights_only: bool = False
    """apply weight decay only to weight matrices (not to biases, norms, embeddings, Mamba's A and D),
    as DT's Atari code; False decays every parameter (DT's gym code)"""
    grad_clip: float = 0.25
    """gradient-norm clip; 0 disables it"""
    batch_size: int = 64
    """windows per batch (RNN-like: whole trajectories per batch)"""
    updates_per_batch: int = 1
    """updates on each sampled batch (the paper's RNN-like DeMa takes several per trajectory batch)"""


@dataclass
class ScheduleConfig:
    """How long to train and how often to log, evaluate and checkpoint."""

    updates: int = 100_000
    """total gradient updates"""
    log_every: int = 100
    """updates between log lines and metrics.csv rows"""
    eval_every: int = 10_000
    """updates between evaluations during training (they feed the "best" figure); 0 disables"""
    checkpoint_every: int = 1_000
    """updates between checkpoints (weights + full resume state)"""


@dataclass
class EvalConfig:
    """Rollouts in the simulator, during training and by `dema eval`."""

    episodes: int = 100
    """episodes per target and seed for the final evaluation"""
    train_episodes: int = 10
    """episodes per target and seed for each evaluation during training"""
    seeds: tuple[int, ...] = (0,)
    """evaluation seeds: environment i of seed s is reset with seed s * 10000 + i"""
    targets: tuple[float, ...] = ()
    """raw return targets; empty means the environment table's (dema.envs); the first is the
    headline figure"""
    max_episode_steps: int = 0
    """cut episodes at this many steps; 0 means the environment's own limit (1000 on MuJoCo)"""
    max_envs: int = 50
    """environments stepped together (episodes beyond this run in further rounds)"""
    at_end: bool = True
    """evaluate the final and the best checkpoint when training ends (writes eval.json)"""


@dataclass
class TrainConfig:
    """One training run. `dema train --help` lists every field as an option."""

    # Chosen with --model / --protocol / --dataset / --preset before the other options (they pick
    # the defaults), so they are not options of their own (dema.train.cli).
    model_name: str = "dema"
    """the model (a name of dema.models.MODELS)"""
    protocol: str = "paper"
    """named protocol applied over the preset (available_protocols())"""
    preset: str = ""
    """the preset the defaults came from (dema.envs.PRESETS)"""
    seed: int = 0
    """seed of the weights, the sampler, dropout and the evaluation environments"""
    device: str = "cpu"
    """torch device"""
    threads: int = 1
    """torch CPU threads (default 1: on a busy 2-core machine torch's own default, every core, ran
    4.5-6x slower per update than one thread; 0 = torch's default, worth trying only on an idle machine)"""
    runs_dir: str = "runs"
    """parent folder of run directories"""
    run_name: str = ""
    """run directory name; empty means <dataset>_<model>_<protocol>_s<seed>"""
    overwrite: bool = False
    """replace an existing run directory of the same name"""
    tensorboard: bool = False
    """also write TensorBoard events (needs the tensorboard package)"""
    progress: bool = True
    """show a tqdm progress bar"""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def run_dir(self) -> Path:
        return Path(self.runs_dir) / (self.run_name or default_run_name(self))

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["model"] = self.model.to_dict()
        for name in ("data", "optim", "schedule", "eval"):
            out[name] = dataclasses.asdict(getattr(self, name))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"a train config is a JSON object of sections, not {type(data).__name__}")
        data = dict(data)
        sections = {"data": DataConfig, "optim": OptimConfig, "schedule": ScheduleConfig, "eval": EvalConfig}
        for name, value in data.items():
            if (name in sections or name == "model") and not isinstance(value, dict):
                raise ConfigError(f"train config: {name} must be a section (a JSON object), not {value!r}")
        _check_types(cls, {k: v for k, v in data.items() if k not in sections and k != "model"}, "train config")
        kwargs: dict[str, Any] = {}
        if "model" in data:
            _check_types(ModelConfig, data["model"], "model config")
            kwargs["model"] = ModelConfig.from_dict(data.pop("model"))
        for name, klass in sections.items():
            if name in data:
                kwargs[name] = _build(klass, data.pop(name), name)
        kwargs.update(_check_keys(cls, data, "train config", skip=set(sections) | {"model"}))
        return cls(**kwargs)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read the run config {path}: {exc}") from None
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def validate(self) -> None:
        """Range checks the dataclasses cannot express; raises ConfigError naming the field."""
        positive = {
            "optim.lr": self.optim.lr, "optim.batch_size": self.optim.batch_size,
            "optim.updates_per_batch": self.optim.updates_per_batch, "schedule.updates": self.schedule.updates,
            "schedule.log_every": self.schedule.log_every, "schedule.checkpoint_every": self.schedule.checkpoint_every,
            "data.reward_scale": self.data.reward_scale, "eval.episodes": self.eval.episodes,
            "eval.train_episodes": self.eval.train_episodes, "eval.max_envs": self.eval.max_envs,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"{name} must be > 0, got {value}")
        for name, value in {"optim.warmup_steps": self.optim.warmup_steps, "optim.grad_clip": self.optim.grad_clip,
                            "schedule.eval_every": self.schedule.eval_every, "threads": self.threads,
                            "eval.max_episode_steps": self.eval.max_episode_steps,
                            "optim.decay_steps": self.optim.decay_steps,
                            "data.max_transitions": self.data.max_transitions}.items():
            if value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")
        if not 0.0 <= self.optim.min_lr_ratio <= 1.0:
            raise ConfigError(f"optim.min_lr_ratio must be in [0, 1], got {self.optim.min_lr_ratio}")
        if not self.eval.seeds:
            raise ConfigError("eval.seeds is empty; give at least one seed, e.g. --eval.seeds 0")
        check_targets(self.eval.targets, "eval.targets")
        if any(seed < 0 for seed in self.eval.seeds):
            raise ConfigError(f"eval.seeds must be >= 0, got {list(self.eval.seeds)}")
        if not all(0.0 <= b < 1.0 for b in self.optim.betas):
            raise ConfigError(f"optim.betas must lie in [0, 1), got {list(self.optim.betas)}")
        for name, value in {"optim.lr": self.optim.lr, "optim.weight_decay": self.optim.weight_decay,
                            "optim.grad_clip": self.optim.grad_clip, "data.reward_scale": self.data.reward_scale}.items():
            if not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value}")


def check_targets(targets, option: str = "--targets") -> None:
    """Return targets must be finite numbers: NaN would condition every step on NaN."""
    bad = [t for t in targets if not math.isfinite(t)]
    if bad:
        raise ConfigError(f"{option}: {bad[0]} is not a finite return target; give raw returns such as 3600 1800")


def check_device(device: str, option: str = "--device") -> None:
    """Refuse a device torch does not know or this machine does not have, before anything is written."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"{option} {device!r} is not a torch device; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise ConfigError(f"{option} {device}: CUDA is not available here ({why}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"{option} {device}: this machine has {torch.cuda.device_count()} GPU(s) "
                              f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"{option} {device}: Apple's MPS backend is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise ConfigError(f"{option} {device}: dema runs on cpu, cuda or mps")


def _check_types(klass, data: dict[str, Any], where: str) -> None:
    """Values read from JSON must have their field's type (a string where a number belongs would
    fail much later, with a traceback)."""
    import enum
    import typing

    hints = typing.get_type_hints(klass)
    for name, value in data.items():
        hint = hints.get(name)
        if hint is None:
            continue  # unknown keys are _check_keys's
        origin = typing.get_origin(hint)
        if origin is tuple:
            inner = typing.get_args(hint)[0]
            ok = isinstance(value, (list, tuple)) and all(_is(v, inner) for v in value)
        elif isinstance(hint, type) and issubclass(hint, enum.Enum):
            ok = isinstance(value, str)
        else:
            ok = _is(value, hint)
        if not ok:
            raise ConfigError(f"{where}: {name}={value!r} is not a valid {getattr(hint, '__name__', hint)}")


def _is(value, kind) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    return True  # anything else is the dataclass's own business


def _build(klass, data: dict[str, Any], where: str):
    _check_types(klass, data, where)
    kwargs = _check_keys(klass, data, where)
    for f in dataclasses.fields(klass):  # JSON has lists where the dataclass has tuples
        if f.name in kwargs and isinstance(kwargs[f.name], list):
            kwargs[f.name] = tuple(kwargs[f.name])
    return klass(**kwargs)


def _check_keys(klass, data: dict[str, Any], where: str, skip: set[str] = frozenset()) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(klass)} - set(skip)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known keys: {sorted(known)}")
    return dict(data)


# ----------------------------------------------------------------------------- presets, protocols


def _protocol_files() -> dict[str, Any]:
    folder = resources.files("dema") / "presets"
    return {p.name[len("protocol-"): -len(".json")]: p for p in folder.iterdir()
            if p.name.startswith("protocol-") and p.name.endswith(".json")}


def available_presets() -> list[str]:
    return list(PRESETS)


def available_protocols() -> list[str]:
    return sorted(_protocol_files())


def find_preset(dataset: str) -> str:
    """The preset for a dataset id or file (`dema.envs.parse_dataset`): "hopper-medium-v5" ->
    "hopper-medium"; "hopper-medium-replay-small" -> "hopper-medium-replay"."""
    return dataset_preset(dataset).name


def _read_protocol(name: str) -> dict[str, Any]:
    return json.loads(_protocol_files()[name].read_text())


def _merge(config: TrainConfig, overrides: dict[str, Any], where: str) -> TrainConfig:
    """Apply {"optim": {"lr": ...}, ...} over a config; unknown sections or keys are errors."""
    data = config.to_dict()
    for section, values in overrides.items():
        if section.startswith("_"):  # "_comment" keys document the file
            continue
        if isinstance(values, dict):
            if section not in data or not isinstance(data[section], dict):
                raise ConfigError(f"{where}: unknown section {section!r}")
            unknown = sorted(set(values) - set(data[section]))
            if unknown:
                raise ConfigError(f"{where}: unknown keys {unknown} in section {section!r}")
            data[section].update(values)
        else:
            if section not in data:
                raise ConfigError(f"{where}: unknown key {section!r}")
            data[section] = values
    return TrainConfig.from_dict(data)


def preset_config(model: str, dataset: str, protocol: str = "paper", preset: str | None = None) -> TrainConfig:
    """The resolved defaults for (model, dataset, protocol) before command-line overrides.

    The dataset's preset (`dema.envs.PRESETS`) gives the model sizes and the model's learning rate, its
    environment the return-to-go scale (Atari: unscaled, as DT's Atari code); the paper's other
    settings are TrainConfig's defaults. A dataset no preset of the paper names takes its environment's
    defaults ("hopper-default", `dema.envs.default_preset`). `preset` names the preset explicitly (e.g.
    "hopper-sac-replay.hdf5" trained with hopper-medium-replay's settings).
    """
    from dema.models import learning_rate, model_config

    paper = dataset_preset(dataset) if preset is None else preset_named(preset)
    preset = paper.name
    if protocol not in available_protocols():
        raise ConfigError(f"unknown protocol {protocol!r}; known: {', '.join(available_protocols())}")
    # an environment outside the table (named only by a Minari dataset's env spec) is MuJoCo-like: 1000
    reward_scale = (ENVS[paper.env].reward_scale if paper.env in ENVS else 1000.0) if paper.env else 1.0
    config = TrainConfig(model_name=model, protocol=protocol, preset=preset, model=model_config(model, preset),
                         data=DataConfig(dataset=dataset, reward_scale=reward_scale),
                         optim=OptimConfig(lr=learning_rate(model, preset)))
    config = _merge(config, paper.train, f"preset {preset}")  # Atari: its optimiser, batch and schedule
    return _merge(config, _read_protocol(protocol), f"protocol-{protocol}.json")


def default_run_name(config: TrainConfig) -> str:
    return f"{dataset_name(config.data.dataset)}_{config.model_name}_{config.protocol}_s{config.seed}"
