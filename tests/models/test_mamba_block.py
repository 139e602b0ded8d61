"""The Mamba block and the bare selective SSM: recurrent step == full forward; padding never leaks."""

import torch

from dema.models.mamba import MambaMixer, SelectiveSSM


def _run_steps(module, x):
    cache = module.init_cache(x.shape[0], dtype=x.dtype)
    outs = []
    for t in range(x.shape[1]):
        y, cache = module.step(x[:, t], cache)
        outs.append(y)
    return torch.stack(outs, dim=1)  # L x (B, D) -> (B, L, D)


def test_mamba_mixer_step_equals_forward():
    torch.manual_seed(0)
    mixer = MambaMixer(d_model=6, d_state=5, d_conv=4, expand=2, dt_rank=2).double()
    x = torch.randn(3, 11, 6, dtype=torch.float64)
    torch.testing.assert_close(_run_steps(mixer, x), mixer(x), rtol=1e-10, atol=1e-12)


def test_bare_ssm_step_equals_forward():
    torch.manual_seed(0)
    ssm = SelectiveSSM(d_inner=7, d_state=3, d_conv=3, dt_rank=1).double()
    x = torch.randn(2, 9, 7, dtype=torch.float64)
    torch.testing.assert_close(_run_steps(ssm, x), ssm(x), rtol=1e-10, atol=1e-12)


def test_left_padding_does_not_leak_into_conv_or_state():
    torch.manual_seed(0)
    mixer = MambaMixer(d_model=6, d_state=5, d_conv=4, expand=2, dt_rank=2).double()
    real = torch.randn(1, 5, 6, dtype=torch.float64)
    garbage = 100 * torch.randn(1, 4, 6, dtype=torch.float64)  # deliberately not zero
    padded = torch.cat([garbage, real], dim=1)
    mask = torch.tensor([[False] * 4 + [True] * 5])
    torch.testing.assert_close(mixer(padded, mask)[:, 4:], mixer(real), rtol=1e-10, atol=1e-12)


def test_official_initialisation():
    torch.manual_seed(0)
    ssm = SelectiveSSM(d_inner=16, d_state=8, d_conv=4, dt_rank=1)
    A = -torch.exp(ssm.A_log)
    torch.testing.assert_close(A, -torch.arange(1, 9.0).repeat(16, 1))  # S4D-real
    dt = torch.nn.functional.softplus(ssm.dt_proj.bias)
    assert (dt >= 1e-4 - 1e-9).all() and (dt <= 0.1 + 1e-6).all()
    assert torch.equal(ssm.D.detach(), torch.ones(16))


def test_chunked_step_equals_single_token_steps_and_forward():
    torch.manual_seed(0)
    mixer = MambaMixer(d_model=6, d_state=5, d_conv=4, expand=2, dt_rank=2).double()
    x = torch.randn(2, 9, 6, dtype=torch.float64)
    cache = mixer.init_cache(2, dtype=x.dtype)
    outs = []
    for chunk in x.split([3, 1, 3, 2], dim=1):  # chunks shorter and longer than W - 1
        y, cache = mixer.step_chunk(chunk, cache)
        outs.append(y)
    torch.testing.assert_close(torch.cat(outs, dim=1), mixer(x), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(torch.cat(outs, dim=1), _run_steps(mixer, x), rtol=1e-10, atol=1e-12)
