"""The paper's model of each name, at the paper's sizes for a dataset.

The sizes per dataset are the `Preset` table of `dema.envs` (one home for them); this module only
says what each model name is: which block, token layout and options on the shared trunk.

    dema       Transformer-like DeMa: pre up-projection Mamba blocks, B3LD tokens, no position embedding;
               tokens (R_t, a_{t-1}, s_t), on Atari (a_{t-1}, R_t, s_t) as DeMa's Atari code (every dema-*)
    dema-bl3d  the same with the three embeddings of a step concatenated into one token
    dema-post  post up-projection: GPT-2 blocks whose attention is a bare selective scan
    dema-rnn   RNN-like DeMa: trains on whole trajectories and acts step by step
    dt         Decision Transformer: GPT-2 blocks, ReLU MLP, dropout 0.1, timestep embedding,
               LayerNorm on the embeddings, and DT's own token order (R_t, s_t, a_t)
    dt-shared  the same with DeMa's token order (R_t, a_{t-1}, s_t): the trunk comparison alone
    dc         Decision Convformer: DT with DC's causal convolution as the mixer, GELU; DC's code is
               a fork of DT's and keeps its token order (R_t, s_t, a_t)
    bc         behaviour cloning: states only, MLP blocks, no sequence mixing
    dema-official  dema as the official code runs it (AndssY/dema, gym/run.sh): its initialisation,
               zero left-padding fed through the model unmasked, a timestep embedding (its
               `--time_embd False` is True through argparse's type=bool), embedding 128 on hopper
    dt-official    dt with Decision Transformer's own initialisation (PyTorch defaults outside the
               GPT-2 trunk); DT masks padding itself, so it keeps masking

docs/ARCHITECTURE.md ("Differences from the reference code") lists what each -official name changes.
"""

from __future__ import annotations

import dataclasses

from dema.envs import PRESETS
from dema.envs import preset as find_dataset_preset
from dema.errors import ConfigError
from dema.models.config import Activation, BlockKind, InitScheme, ModelConfig, TokenLayout, TokenOrder

MODELS = ("dema", "dema-bl3d", "dema-post", "dema-rnn", "dt", "dt-shared", "dc", "bc", "dema-official", "dt-official")
# name -> (the model it modifies, the fields it changes); dema-official's embedding is set below
VARIANTS = {
    "dema-official": ("dema", dict(init=InitScheme.OFFICIAL, mask_padding=False, position_embedding=True)),
    "dt-official": ("dt", dict(init=InitScheme.OFFICIAL)),
}
OFFICIAL_EMBED_DIM = 128  # the official script's (and code default's) embedding, where the paper says 256
# the presets `dema params` lists: every dataset with a simulator, and one for all Atari games
PRESET_DATASETS = tuple(name for name, p in PRESETS.items() if p.env is not None) + ("atari",)


def model_config(model: str, dataset: str) -> ModelConfig:
    """The paper's preset of `model` for `dataset` (any id form `dema.envs.parse_dataset` reads:
    "hopper-medium", "hopper-medium-v2", a path, "atari" or an Atari game)."""
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if model in VARIANTS:
        base, changes = VARIANTS[model]
        cfg = dataclasses.replace(model_config(base, dataset), **changes)
        if model == "dema-official" and find_dataset_preset(dataset).name.startswith("hopper"):
            cfg = dataclasses.replace(cfg, embed_dim=OFFICIAL_EMBED_DIM)
        return cfg
    sizes = find_dataset_preset(dataset)
    if model.startswith("dema"):
        cfg = ModelConfig(block=BlockKind.MAMBA_PRE_UP, layout=TokenLayout.B3LD, **sizes.dema)
        if model == "dema-bl3d":
            cfg = dataclasses.replace(cfg, layout=TokenLayout.BL3D)
        elif model == "dema-post":
            cfg = dataclasses.replace(cfg, block=BlockKind.MAMBA_POST_UP)
        elif model == "dema-rnn":
            cfg = dataclasses.replace(cfg, recurrent=True)
        if sizes.env is None:  # Atari: the order of DeMa's Atari code, (a_{t-1}, R_t, s_t)
            cfg = dataclasses.replace(cfg, token_order=TokenOrder.PREV_ACTION_RETURN_STATE)
        return cfg
    transformer_like = dict(activation=Activation.RELU, dropout=0.1, position_embedding=True,
                            embed_norm=True, **sizes.dt)
    if model == "dt":
        return ModelConfig(block=BlockKind.ATTENTION, token_order=TokenOrder.RETURN_STATE_ACTION, **transformer_like)
    if model == "dt-shared":
        return ModelConfig(block=BlockKind.ATTENTION, **transformer_like)
    if model == "dc":
        return ModelConfig(block=BlockKind.CONVFORMER, conv_window=6, token_order=TokenOrder.RETURN_STATE_ACTION,
                           **{**transformer_like, "activation": Activation.GELU})
    # bc: the same trunk with neither return-to-go nor actions and no sequence mixing
    return ModelConfig(block=BlockKind.MLP, layout=TokenLayout.STATE_ONLY, activation=Activation.RELU,
                       dropout=0.1, **{k: v for k, v in sizes.dt.items() if k != "n_head"})
