"""Hidden attention is exact: alpha @ u reproduces the scan output (no D, no gate)."""

import pytest
import torch

from dema.attention import hidden_attention, hidden_attention_last_row, policy_hidden_attention
from dema.scan import selective_scan_fn, selective_scan_ref

from tiny_models import random_batch, tiny_policy


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
@pytest.mark.parametrize("shape", [(2, 3, 9, 4), (1, 5, 1, 2), (3, 2, 17, 7)])
def test_alpha_times_u_equals_the_scan(dtype, tol, shape):
    b, d, L, n = shape
    g = torch.Generator().manual_seed(0)
    u, delta = torch.randn(b, d, L, generator=g, dtype=dtype), torch.randn(b, d, L, generator=g, dtype=dtype)
    A = -torch.rand(d, n, generator=g, dtype=dtype) * 3
    B, C = torch.randn(b, n, L, generator=g, dtype=dtype), torch.randn(b, n, L, generator=g, dtype=dtype)
    bias = torch.randn(d, generator=g, dtype=dtype)
    alpha = hidden_attention(delta, A, B, C, delta_bias=bias, delta_softplus=True)
    assert alpha.shape == (b, d, L, L)
    assert torch.all(alpha.triu(1) == 0)
    expected = selective_scan_fn(u, delta, A, B, C, delta_bias=bias, delta_softplus=True)
    torch.testing.assert_close((alpha @ u[..., None])[..., 0], expected, rtol=tol, atol=tol)
    torch.testing.assert_close(expected, selective_scan_ref(u, delta, A, B, C, delta_bias=bias, delta_softplus=True),
                               rtol=tol, atol=tol)
    last = hidden_attention_last_row(delta, A, B, C, delta_bias=bias, delta_softplus=True)
    torch.testing.assert_close(last, alpha[:, :, -1], rtol=tol, atol=tol)


@pytest.mark.parametrize("model", ["dema", "dema-post"])
def test_policy_attention_has_one_causal_matrix_per_layer(model):
    policy = tiny_policy(model)
    batch = random_batch(length=5)
    alphas = policy_hidden_attention(policy, batch)
    assert len(alphas) == policy.cfg.n_layer
    assert alphas[0].shape == (2, policy.cfg.d_inner if model == "dema" else policy.cfg.d_model, 15, 15)
    assert all(torch.all(a.triu(1) == 0) for a in alphas)
    rows = policy_hidden_attention(policy, batch, last_row=True)
    for full, row in zip(alphas, rows):
        torch.testing.assert_close(row, full[:, :, -1])


def test_attention_refused_for_models_without_a_scan():
    with pytest.raises(ValueError, match="no selective scan"):
        policy_hidden_attention(tiny_policy("dt"), random_batch())
