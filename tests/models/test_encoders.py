"""The Atari frame encoder: its channels-last CPU path against the plain NCHW convolutions."""

import torch

from dema.bench.workloads import build, random_batch
from dema.models.encoders import NatureCNN


def test_channels_last_path_matches_the_nchw_reference_outputs_and_gradients():
    torch.manual_seed(0)
    encoder = NatureCNN(4, 32)
    frames = torch.randint(0, 256, (2, 3, 4, 84, 84), dtype=torch.uint8).float() / 255  # (B, K, C, H, W)

    fast = encoder(frames)
    fast.square().sum().backward()
    fast_grads = [p.grad.clone() for p in encoder.parameters()]
    encoder.zero_grad()
    reference = encoder.proj(encoder.convs(frames.reshape(-1, 4, 84, 84).contiguous())).reshape(2, 3, -1)
    reference.square().sum().backward()

    assert fast.shape == (2, 3, 32)
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-6)
    for got, want in zip(fast_grads, (p.grad for p in encoder.parameters())):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_bench_builds_the_atari_policy_on_frames_as_dema_train_does():
    policy, state_dim, act_dim = build("dema", "atari/Breakout")
    assert state_dim == (4, 84, 84) and act_dim == 4
    assert any(isinstance(m, NatureCNN) for m in policy.modules())
    batch = random_batch(2, 5, state_dim, act_dim)
    assert batch.states.shape == (2, 5, 4, 84, 84) and batch.actions.dtype == torch.long
    assert int(batch.prev_actions[0, 0]) == act_dim  # the reserved "no previous action" index
    assert torch.isfinite(policy.loss(batch))
