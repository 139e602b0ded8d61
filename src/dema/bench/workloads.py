"""What the benchmarks run: random batches of the right shapes and one training step.

The training step is the one `dema train` runs (src/dema/train/loop.py): masked action loss,
backward, grad-norm clip 0.25, AdamW (lr 1e-4, weight decay 1e-4). The data are random numbers of
the dataset's shapes: speed does not depend on their values.
"""

from __future__ import annotations

import dataclasses

import torch

from dema.data.batch import Batch
from dema.envs import env_spec
from dema.models import build_policy, model_config


def random_batch(batch_size: int, steps: int, state_dim: int | tuple[int, ...], act_dim: int,
                 max_ep_len: int = 1000, device="cpu", seed: int = 0) -> Batch:
    """A full (unpadded) batch of `steps`-step windows at random episode offsets: state vectors and
    continuous actions, or (state_dim a (C, H, W) shape) stacked frames in [0, 1] with discrete
    actions, the first previous action the reserved "none" index act_dim."""
    gen = torch.Generator().manual_seed(seed)
    if not isinstance(state_dim, int):
        actions = torch.randint(0, act_dim, (batch_size, steps), generator=gen)
        return Batch(states=torch.rand(batch_size, steps, *state_dim, generator=gen), actions=actions,
                     prev_actions=torch.cat([torch.full((batch_size, 1), act_dim), actions[:, :-1]], dim=1),
                     returns_to_go=torch.rand(batch_size, steps, 1, generator=gen),
                     timesteps=torch.arange(steps).repeat(batch_size, 1),
                     mask=torch.ones(batch_size, steps, dtype=torch.bool)).to(device)
    actions = torch.rand(batch_size, steps, act_dim, generator=gen) * 2 - 1
    prev_actions = torch.cat([torch.zeros(batch_size, 1, act_dim), actions[:, :-1]], dim=1)
    start = torch.randint(0, max(max_ep_len - steps, 1), (batch_size, 1), generator=gen)
    return Batch(
        states=torch.randn(batch_size, steps, state_dim, generator=gen),
        actions=actions,
        prev_actions=prev_actions,
        returns_to_go=torch.rand(batch_size, steps, 1, generator=gen) * 3.6,
        timesteps=start + torch.arange(steps),
        mask=torch.ones(batch_size, steps, dtype=torch.bool),
    ).to(device)


def build(model: str, dataset: str = "hopper-medium", device="cpu", seed: int = 0, **overrides):
    """(policy, state_dim, act_dim) for a model's paper preset on a dataset's environment; on an
    Atari game state_dim is the shape of its stacked frames, as `dema train` builds it."""
    cfg = model_config(model, dataset)
    if overrides:
        cfg = dataclasses.replace(cfg, **overrides)
    spec = env_spec(dataset)
    torch.manual_seed(seed)
    policy = build_policy(cfg, state_dim=spec.state_shape, act_dim=spec.act_dim, discrete=spec.discrete).to(device)
    return policy, spec.state_shape, spec.act_dim


class TrainStep:
    """One optimiser update of `policy` on a fixed batch; call it to run one step."""

    def __init__(self, policy: torch.nn.Module, batch: Batch, lr: float = 1e-4, grad_clip: float = 0.25):
        self.policy, self.batch, self.grad_clip = policy.train(), batch, grad_clip
        self.optimizer = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=1e-4)

    def __call__(self) -> float:
        loss = self.policy.loss(self.batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.grad_clip)
        self.optimizer.step()
        return loss.item()
