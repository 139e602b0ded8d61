"""The optimiser of a training run: AdamW, its parameter groups and its learning-rate schedule.

    optimizer, scheduler = build_optimizer(policy, config.optim)   # scheduler.step() after each update

The schedule is a linear warm-up to the peak rate, then constant (the paper's and DT's gym code),
or with `optim.decay_steps` DT's Atari cosine decay to a floor. Weight decay applies to every
parameter (DT's gym code) or, with `optim.decay_weights_only`, to the weights of Linear and
convolution layers only (DT's Atari code).
"""

from __future__ import annotations

import math

import torch

from dema.run.config import OptimConfig


def build_optimizer(policy: torch.nn.Module, optim: OptimConfig) \
        -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over `policy`'s parameter groups, and the scheduler that sets its rate each update."""
    groups = parameter_groups(policy, optim.weight_decay, optim.decay_weights_only)
    optimizer = torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(optim.warmup_steps, optim.decay_steps, optim.min_lr_ratio))
    return optimizer, scheduler


def lr_factor(warmup_steps: int, decay_steps: int = 0, min_ratio: float = 0.1):
    """The lr multiplier of update s: linear warm-up to 1 over warmup_steps, then constant, or with
    decay_steps DT's Atari schedule: a cosine from 1 at the end of the warm-up to 0 at update
    decay_steps, floored at min_ratio (so the floor is reached before decay_steps: at about 80% of
    it for min_ratio 0.1), then min_ratio."""
    warmup = max(warmup_steps, 1)

    def factor(step: int) -> float:
        if step + 1 < warmup or not decay_steps:
            return min((step + 1) / warmup, 1.0)
        progress = min(max((step + 1 - warmup) / max(decay_steps - warmup, 1), 0.0), 1.0)
        return max(min_ratio, 0.5 * (1.0 + math.cos(math.pi * progress)))

    return factor


def parameter_groups(policy: torch.nn.Module, weight_decay: float, weights_only: bool) -> list[dict]:
    """AdamW parameter groups: every parameter decayed, or (weights_only, as DT's Atari code) only
    the weights of Linear and convolution layers (not biases, norms, embeddings, Mamba's A and D)."""
    if not weights_only:
        return [{"params": list(policy.parameters()), "weight_decay": weight_decay}]
    decayed = {id(m.weight) for m in policy.modules()
               if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d))}
    params = list(policy.parameters())
    return [{"params": [p for p in params if id(p) in decayed], "weight_decay": weight_decay},
            {"params": [p for p in params if id(p) not in decayed], "weight_decay": 0.0}]
