"""The fast scan's memory is linear in L, without the (B, Di, L, N) product: 1000 environment steps
(3000 tokens) of RNN-like training at batch 8 fit easily, for the scan and for the whole model."""

from __future__ import annotations

import pytest
import torch

from dema.bench.timing import peak_memory_mb
from dema.scan import numba_available, selective_scan_fn

needs_numba = pytest.mark.skipif(not numba_available(), reason="numba is not installed (the fallback "
                                 "materialises (B, Di, L, N) and is not linear-memory in this sense)")
needs_procfs = pytest.mark.skipif(peak_memory_mb(lambda: None) is None, reason="needs Linux /proc")


def scan_step(batch, length, d_inner=128, d_state=64):
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(batch, d_inner, length, generator=gen, requires_grad=True)
    delta = torch.randn(batch, d_inner, length, generator=gen, requires_grad=True)
    A = (-torch.rand(d_inner, d_state, generator=gen) - 0.5).requires_grad_()
    B = torch.randn(batch, d_state, length, generator=gen, requires_grad=True)
    C = torch.randn(batch, d_state, length, generator=gen, requires_grad=True)

    def run():
        selective_scan_fn(u, delta, A, B, C, delta_softplus=True).sum().backward()

    inputs_mb = sum(t.numel() * 4 for t in (u, delta, B, C)) / 2**20
    return run, inputs_mb


@needs_numba
@needs_procfs
def test_scan_memory_is_linear_in_length():
    """Peak extra memory of forward + backward at 3000 tokens, batch 8 (the (B, Di, L, N) states
    alone would be 786 MB), and at 4x fewer tokens: it scales with L and stays a few times the inputs."""
    run_long, inputs_long = scan_step(batch=8, length=3000)
    run_short, _ = scan_step(batch=8, length=750)
    run_long()  # compile and warm up
    peak_long = peak_memory_mb(run_long)
    peak_short = peak_memory_mb(run_short)
    assert peak_long < 8 * inputs_long + 50, f"{peak_long:.0f} MB for {inputs_long:.0f} MB of inputs"
    assert peak_long < 400
    assert peak_short < peak_long / 2 + 20  # linear, not more


@needs_numba
@needs_procfs
def test_rnn_like_training_step_on_1000_steps_at_batch_8():
    """One training step of RNN-like DeMa (hopper-medium preset) on whole 1000-step trajectories."""
    from dema.bench.workloads import TrainStep, build, random_batch

    policy, state_dim, act_dim = build("dema-rnn", "hopper-medium")
    step = TrainStep(policy, random_batch(8, 1000, state_dim, act_dim))
    peak = peak_memory_mb(step)
    assert peak < 2048, f"{peak:.0f} MB"
    loss_before = policy.loss(step.batch).item()
    assert torch.isfinite(torch.tensor(loss_before))
