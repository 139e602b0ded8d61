"""The model registry: every model name, what it is on the shared trunk, and where it shows up.

One `ModelSpec` per name in `REGISTRY`, in the order the report lists them. Every list of models
derives from it: `model_config` and `learning_rate` below, `dema train --model` and its `--help`,
the grids' check, `dema params`, the report's labels, order and comparisons (the paper's main
table, and each other model against its reference), `dema bench` and `dema demo` (`Study`).

A model is a block kind (`BlockKind`, the mixer and how it is wrapped: models/blocks.py), the sizes
and learning rate of a `Family` taken from the dataset's preset (`dema.envs.PRESETS`), and the
`ModelConfig` fields it sets over them. Adding a mixer: its file, its block kind, one entry here
(CONTRIBUTING.md). docs/ARCHITECTURE.md ("The models", "Differences from the reference code")
describes each name.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from dema.envs import PRESETS, Preset
from dema.envs import preset as find_dataset_preset
from dema.errors import ConfigError
from dema.models.config import Activation, BlockKind, InitScheme, ModelConfig, TokenLayout, TokenOrder


class Family(enum.Enum):
    """Whose settings a model takes from a dataset's preset (`dema.envs.Preset`): sizes and learning
    rate, and on Atari the token order of that family's code."""

    DEMA = "dema"  # Preset.dema sizes, Preset.lr (the DeMa paper's, per dataset); on Atari (a_{t-1}, R_t, s_t)
    DT = "dt"  # Preset.dt sizes, Preset.dt_lr (DT's gym code: 1e-4 on MuJoCo); DC and BC are DT's forks

    def settings(self, preset: Preset) -> dict:
        """The ModelConfig fields this family takes from `preset`."""
        if self is Family.DT:
            return dict(preset.dt)
        if preset.env is None:  # Atari: the order of DeMa's Atari code, (a_{t-1}, R_t, s_t)
            return {**preset.dema, "token_order": TokenOrder.PREV_ACTION_RETURN_STATE}
        return dict(preset.dema)

    def learning_rate(self, preset: Preset) -> float:
        return preset.lr if self is Family.DEMA or preset.dt_lr is None else preset.dt_lr


class Study(enum.Enum):
    """The fixed comparisons that run a chosen few models (`ModelSpec.studies`)."""

    HEADLINE = "headline"  # DeMa against DT, the paper's main claim: `dema demo`, `dema bench step` and
    # `profile`, the report's Pong diagnostics
    COST_CURVES = "cost-curves"  # `dema bench cost`: cost against sequence length (the paper's Figure 2)
    COST_TABLE = "cost-table"  # `dema bench cost`: parameters, MACs and training step per preset (Table 7)


@dataclass(frozen=True)
class ModelSpec:
    """What one model name is."""

    name: str  # what --model, grids and records call it
    label: str  # how the report names it
    family: Family  # the preset's sizes and learning rate it takes
    block: BlockKind  # the residual block: the sequence mixer and how it is wrapped
    config: Mapping = field(default_factory=dict)  # ModelConfig fields over the family's settings
    per_env: Mapping[str, Mapping] = field(default_factory=dict)  # further fields on one environment's
    # presets: {"hopper": {...}} (Preset.env), {"atari": {...}} (every game)
    reference: str | None = None  # None: a model of the paper's main table, compared with the others
    # there; else the model its aggregates are compared with (an ablation or a fidelity variant)
    studies: frozenset[Study] = frozenset()

    def __post_init__(self):  # read-only views: entries share their dicts (_DT_TRUNK)
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))
        object.__setattr__(self, "per_env", MappingProxyType({k: MappingProxyType(dict(v)) for k, v in self.per_env.items()}))

    def model_config(self, preset: Preset) -> ModelConfig:
        env_fields = self.per_env.get(preset.env or "atari", {})
        return ModelConfig(block=self.block, **{**self.family.settings(preset), **self.config, **env_fields})


# Decision Transformer's trunk options (DT's gym code), shared by its forks
_DT_TRUNK = dict(activation=Activation.RELU, dropout=0.1, position_embedding=True, embed_norm=True)
_DT = {**_DT_TRUNK, "token_order": TokenOrder.RETURN_STATE_ACTION}  # DT's own order, (R_t, s_t, a_t)
OFFICIAL_EMBED_DIM = 128  # the official DeMa script's (and code default's) embedding, where the paper says 256
_HEADLINE_AND_COST = frozenset({Study.HEADLINE, Study.COST_CURVES, Study.COST_TABLE})

REGISTRY: tuple[ModelSpec, ...] = (
    # Transformer-like DeMa: pre up-projection Mamba blocks, B3LD tokens (R_t, a_{t-1}, s_t), no
    # position embedding; acts on a K-step window
    ModelSpec("dema", "DeMa", Family.DEMA, BlockKind.MAMBA_PRE_UP, studies=_HEADLINE_AND_COST),
    # Decision Transformer: GPT-2 blocks, ReLU MLP, dropout 0.1, timestep embedding, LayerNorm on the
    # embeddings, and DT's own token order (R_t, s_t, a_t)
    ModelSpec("dt", "DT", Family.DT, BlockKind.ATTENTION, _DT, studies=_HEADLINE_AND_COST),
    # DT with DeMa's token order (R_t, a_{t-1}, s_t): the trunk comparison alone
    ModelSpec("dt-shared", "DT (DeMa's token order)", Family.DT, BlockKind.ATTENTION, _DT_TRUNK, reference="dt"),
    # DeMa with the three embeddings of a step concatenated into one token
    ModelSpec("dema-bl3d", "DeMa-BL3D", Family.DEMA, BlockKind.MAMBA_PRE_UP, dict(layout=TokenLayout.BL3D),
              reference="dema", studies=frozenset({Study.COST_TABLE})),
    # post up-projection: GPT-2 blocks whose attention is a bare selective scan
    ModelSpec("dema-post", "DeMa-post", Family.DEMA, BlockKind.MAMBA_POST_UP, reference="dema",
              studies=frozenset({Study.COST_TABLE})),
    # RNN-like DeMa: trains on whole trajectories and acts step by step with the recurrent cache
    ModelSpec("dema-rnn", "DeMa-RNN", Family.DEMA, BlockKind.MAMBA_PRE_UP, dict(recurrent=True), reference="dema",
              studies=frozenset({Study.COST_CURVES, Study.COST_TABLE})),
    # Decision Convformer: DT with DC's causal convolution as the mixer, GELU; DC's code is a fork of
    # DT's and keeps its token order
    ModelSpec("dc", "DC", Family.DT, BlockKind.CONVFORMER, {**_DT, "activation": Activation.GELU, "conv_window": 6},
              studies=frozenset({Study.COST_CURVES, Study.COST_TABLE})),
    # behaviour cloning: states only, MLP blocks, no sequence mixing (and no heads: n_head 1 whatever DT's)
    ModelSpec("bc", "BC", Family.DT, BlockKind.MLP,
              dict(layout=TokenLayout.STATE_ONLY, activation=Activation.RELU, dropout=0.1, n_head=1)),
    # dema as the official code runs it (AndssY/dema, gym/run.sh): its initialisation, zero left-padding
    # fed through the model unmasked, a timestep embedding (its `--time_embd False` is True through
    # argparse's type=bool), embedding 128 on hopper
    ModelSpec("dema-official", "DeMa (official code's choices)", Family.DEMA, BlockKind.MAMBA_PRE_UP,
              dict(init=InitScheme.OFFICIAL, mask_padding=False, position_embedding=True),
              per_env={"hopper": dict(embed_dim=OFFICIAL_EMBED_DIM)}, reference="dema"),
    # dt with Decision Transformer's own initialisation (PyTorch defaults outside the GPT-2 trunk); DT
    # masks padding itself, so it keeps masking
    ModelSpec("dt-official", "DT (official init)", Family.DT, BlockKind.ATTENTION, {**_DT, "init": InitScheme.OFFICIAL},
              reference="dt"),
)

MODELS = tuple(spec.name for spec in REGISTRY)
_BY_NAME = {spec.name: spec for spec in REGISTRY}
# the presets `dema params` lists: every dataset with a simulator, and one for all Atari games
PRESET_DATASETS = tuple(name for name, p in PRESETS.items() if p.env is not None) + ("atari",)


def model_spec(model: str) -> ModelSpec:
    if model not in _BY_NAME:
        raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    return _BY_NAME[model]


def model_config(model: str, dataset: str) -> ModelConfig:
    """The paper's preset of `model` for `dataset` (any id form `dema.envs.parse_dataset` reads:
    "hopper-medium", "hopper-medium-v2", a path, "atari" or an Atari game)."""
    return model_spec(model).model_config(find_dataset_preset(dataset))


def learning_rate(model: str, dataset: str) -> float:
    """The learning rate of `model` on `dataset`'s preset: its family's (see `Family`)."""
    return model_spec(model).family.learning_rate(find_dataset_preset(dataset))


def label(model: str) -> str:
    """How the report names `model`; a name not registered (an old record's) as it is."""
    return _BY_NAME[model].label if model in _BY_NAME else model


def rank(model: str) -> tuple[int, str]:
    """Sort key: the registry's order, then any name not registered, alphabetically."""
    return (MODELS.index(model) if model in _BY_NAME else len(MODELS), model)


def main_table() -> tuple[str, ...]:
    """The paper's main table's models (compared together), in the registry's order."""
    return tuple(spec.name for spec in REGISTRY if spec.reference is None)


def reference_of(model: str) -> str | None:
    """The model an ablation or fidelity variant is compared with; None for the main table's models
    and for names not registered."""
    return _BY_NAME[model].reference if model in _BY_NAME else None


def models_in(study: Study) -> tuple[str, ...]:
    """The models a study runs, in the registry's order."""
    return tuple(spec.name for spec in REGISTRY if study in spec.studies)
