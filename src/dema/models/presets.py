"""The paper's model sizes, per model and dataset (see ../shared/PAPER.md).

MuJoCo DeMa: 3 layers, d_state 64, expand 2, d_conv 4, K 20; embedding 256 for hopper-medium and
hopper-medium-replay, 128 otherwise; d_model 128 on medium-expert, 64 otherwise; no position
embedding. Decision Transformer: 3 layers, 1 head, width 128, MLP 4x ReLU, dropout 0.1, timestep
embedding (1000 x 128), LayerNorm on the embeddings. Atari: 6 layers, width 128, K 30 (8 for Qbert
and Frostbite); DT with 8 heads. Maze2d-medium: K 8, embedding 256.
"""

from __future__ import annotations

import dataclasses

from dema.errors import ConfigError
from dema.models.config import Activation, BlockKind, ModelConfig, TokenLayout

MODELS = ("dema", "dema-bl3d", "dema-post", "dema-rnn", "dt", "dc", "bc")
ATARI_GAMES = ("breakout", "qbert", "pong", "seaquest", "asterix", "frostbite", "assault", "gopher")
PRESET_DATASETS = (
    "hopper-medium", "hopper-medium-replay", "hopper-medium-expert",
    "halfcheetah-medium", "halfcheetah-medium-replay", "halfcheetah-medium-expert",
    "walker2d-medium", "walker2d-medium-replay", "walker2d-medium-expert",
    "maze2d-umaze", "maze2d-medium", "maze2d-large", "atari",
)


def _dema_sizes(dataset: str) -> dict:
    if dataset == "atari" or dataset in ATARI_GAMES:
        short_context = dataset in ("qbert", "frostbite")
        return dict(n_layer=6, embed_dim=128, d_model=128, d_state=16, context_len=8 if short_context else 30)
    embed = 256 if dataset in ("hopper-medium", "hopper-medium-replay", "maze2d-medium") else 128
    d_model = 128 if dataset.endswith("medium-expert") else 64
    context = 8 if dataset == "maze2d-medium" else 20
    return dict(n_layer=3, embed_dim=embed, d_model=d_model, d_state=64, context_len=context)


def _dt_sizes(dataset: str) -> dict:
    if dataset == "atari" or dataset in ATARI_GAMES:
        short_context = dataset in ("qbert", "frostbite")
        return dict(n_layer=6, n_head=8, embed_dim=128, d_model=128, context_len=8 if short_context else 30)
    return dict(n_layer=3, n_head=1, embed_dim=128, d_model=128, context_len=8 if dataset == "maze2d-medium" else 20)


def model_config(model: str, dataset: str) -> ModelConfig:
    """The paper's preset of `model` for `dataset` ("hopper-medium", "atari" or an Atari game).

    Dataset ids may carry a version suffix ("hopper-medium-v2"); it is ignored.
    """
    dataset = _strip_version(dataset.lower())
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if dataset not in PRESET_DATASETS and dataset not in ATARI_GAMES:
        raise ConfigError(f"no preset for dataset {dataset!r}; known: {', '.join(PRESET_DATASETS + ATARI_GAMES)}")
    if model.startswith("dema"):
        cfg = ModelConfig(block=BlockKind.MAMBA_PRE_UP, layout=TokenLayout.B3LD, **_dema_sizes(dataset))
        if model == "dema-bl3d":
            cfg = dataclasses.replace(cfg, layout=TokenLayout.BL3D)
        elif model == "dema-post":
            cfg = dataclasses.replace(cfg, block=BlockKind.MAMBA_POST_UP)
        elif model == "dema-rnn":
            cfg = dataclasses.replace(cfg, recurrent=True)
        return cfg
    transformer_like = dict(activation=Activation.RELU, dropout=0.1, position_embedding=True,
                            embed_norm=True, **_dt_sizes(dataset))
    if model == "dt":
        return ModelConfig(block=BlockKind.ATTENTION, **transformer_like)
    if model == "dc":
        return ModelConfig(block=BlockKind.CONVFORMER, conv_window=6,
                           **{**transformer_like, "activation": Activation.GELU})
    # bc: the same trunk with neither return-to-go nor actions and no sequence mixing
    return ModelConfig(block=BlockKind.MLP, layout=TokenLayout.STATE_ONLY, activation=Activation.RELU,
                       dropout=0.1, **{k: v for k, v in _dt_sizes(dataset).items() if k != "n_head"})


def _strip_version(dataset: str) -> str:
    head, _, tail = dataset.rpartition("-v")
    return head if head and tail.isdigit() else dataset
