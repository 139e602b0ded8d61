"""Tiny versions of every model and random batches, shared by the model tests."""

import dataclasses

import torch

from dema.data.batch import Batch
from dema.models import build_policy, model_config

STATE_DIM, ACT_DIM = 5, 3


def tiny_config(model: str, **overrides):
    """The paper's preset of `model`, shrunk so tests run in milliseconds; dropout off."""
    cfg = model_config(model, "hopper-medium")
    small = dict(n_layer=2, embed_dim=12, d_model=8, d_state=4, dropout=0.0, max_ep_len=64, context_len=6)
    return dataclasses.replace(cfg, **{**small, **overrides})


def tiny_policy(model: str, dtype=torch.float64, seed=0, **overrides):
    torch.manual_seed(seed)
    return build_policy(tiny_config(model, **overrides), STATE_DIM, ACT_DIM).to(dtype).eval()


def random_batch(batch_size=2, length=6, dtype=torch.float64, seed=1, start=0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        states=torch.randn(batch_size, length, STATE_DIM, generator=g, dtype=dtype),
        actions=torch.rand(batch_size, length, ACT_DIM, generator=g, dtype=dtype) * 2 - 1,
        prev_actions=torch.rand(batch_size, length, ACT_DIM, generator=g, dtype=dtype) * 2 - 1,
        returns_to_go=torch.randn(batch_size, length, 1, generator=g, dtype=dtype),
        timesteps=torch.arange(start, start + length).repeat(batch_size, 1),
        mask=torch.ones(batch_size, length, dtype=torch.bool),
    )


def garbage_left_padded(real: Batch, pad: int, value: float = 3.0) -> Batch:
    """`real` with `pad` positions of garbage (not zeros) on the left, masked out: the model must
    ignore padded positions entirely."""
    padded = dataclasses.replace(real)
    for name in ("states", "actions", "prev_actions", "returns_to_go", "timesteps"):
        tensor = getattr(real, name)
        filler = torch.full((tensor.shape[0], pad, *tensor.shape[2:]), value, dtype=tensor.dtype)
        setattr(padded, name, torch.cat([filler, tensor], dim=1))
    padded.mask = torch.cat([torch.zeros(real.mask.shape[0], pad, dtype=torch.bool), real.mask], dim=1)
    return padded
