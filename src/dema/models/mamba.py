"""Mamba-1 in pure PyTorch: the selective SSM core and the full Mamba block.

SelectiveSSM, the "bare selective scan" (used alone by the post up-projection block):

    x (B, L, Di) -> causal depthwise conv1d (width W) -> SiLU -> u
    u -> x_proj -> (dt (R), B (N), C (N));  delta = softplus(dt_proj(dt))   (bias inside softplus)
    y = selective_scan(u, delta, A = -exp(A_log), B, C, D)                   (see dema.scan)

MambaMixer, the Mamba block (the pre up-projection residual's mixer):

    x (B, L, D) -> in_proj -> (x, z) each (B, L, Di);  y = SelectiveSSM(x) * SiLU(z);  out_proj -> D

Initialisation follows mamba-ssm's `Mamba.__init__`: A_log = log(1..N) per channel (S4D-real),
D = 1, dt_proj weight U(-R^-0.5, R^-0.5), dt bias = softplus^-1(dt) with dt log-uniform in
[1e-3, 1e-1] (floored at 1e-4); those parameters are marked `_no_reinit` so the model-wide GPT-2
initialisation leaves them alone.

Padding: `mask` (B, L) is False at left-padded positions. The conv input and the scan input are
zeroed there, so the conv sees exactly the zeros of its own causal padding and the SSM state stays
exactly zero until the first real token: padded positions cannot leak into real ones.

On the CPU with the Numba scan, `forward` runs everything from the conv to the scan as one autograd
node in the (B, L, Di) layout, the SSM node (`dema.scan.numba_ssm`: no transposes, the conv + SiLU
in Numba, the gradient of x_proj's output and of in_proj's (x, z) each in one buffer): issue 12,
about 0.15 of DeMa's training step at the hopper preset (docs/PERFORMANCE.md). It equals the plain
forward above up to float rounding (tests/models/test_ssm_node.py); the compute paths' `ssm="ref"`
(DEMA_SSM=ref, or `with compute_paths(ssm="ref"):`, dema.scan.paths) select the plain one, and so
does an `attention_override`.

Recurrent decoding: `step(x_t, cache) -> (y_t, cache)` with an explicit `SSMCache` holding the last
W-1 conv inputs and the SSM state h (B, Di, N); it equals the full forward token by token (tested).
`step_chunk(x, cache)` continues the same recurrence over a few tokens at once (the three tokens of
one environment step when acting): at batch 1 the cost is the number of PyTorch calls, not the
arithmetic, so one chunk pass per layer instead of three single-token passes is what makes
RNN-like acting cheap (docs/PERFORMANCE.md). `step` stays as the plain reference it is tested
against; `step_chunk` is inference only (its scan carries no gradient).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from dema.scan import current_paths, numba_available, scan_backend, selective_scan_fn
from dema.scan.reference import apply_skip_and_gate
from dema.scan.stateful import selective_scan_with_state


@functools.cache
def _numba_ssm():
    """dema.scan.numba_ssm (the SSM node), or None without numba."""
    if not numba_available():
        return None
    from dema.scan import numba_ssm

    return numba_ssm


def ssm_path(x: torch.Tensor | None = None) -> str:
    """How SelectiveSSM.forward runs for inputs like x: 'node' (the SSM node: one Numba autograd
    node for conv, SiLU, x_proj, dt_proj and the scan, dema.scan.numba_ssm) where the scan is the
    Numba kernel, else 'ref' (the plain PyTorch forward around whatever scan selective_scan_fn
    takes). The compute paths' ssm="ref" (DEMA_SSM=ref) forces the plain forward, the reference
    the node is tested against."""
    if current_paths().ssm == "ref" or scan_backend(x) != "numba" or _numba_ssm() is None:
        return "ref"
    return "node"


@dataclass
class SSMCache:
    conv_state: torch.Tensor  # (B, Di, W-1): the last W-1 inputs of the causal conv
    ssm_state: torch.Tensor  # (B, Di, N)


@dataclass
class ScanInputs:
    """What one SelectiveSSM feeds its scan: enough to rebuild the hidden attention matrix."""

    u: torch.Tensor  # (B, Di, L) post-conv, post-SiLU sequence
    delta: torch.Tensor  # (B, Di, L) before bias and softplus
    A: torch.Tensor  # (Di, N)
    B: torch.Tensor  # (B, N, L)
    C: torch.Tensor  # (B, N, L)
    delta_bias: torch.Tensor  # (Di,)


class SelectiveSSM(nn.Module):
    """Causal conv + S6 over width Di. forward: (B, L, Di) -> (B, L, Di)."""

    # Analysis hook (dema.analysis.surgery), None in every model: forward is then exactly the plain
    # scan, at no cost. A plain callable (not a Module) set on an instance is called in `forward`
    # as `attention_override(s, mask)` with this layer's ScanInputs and token mask (B, L) or None,
    # and says which hidden attention the layer uses instead of its own alpha(s):
    #   - a ScanInputs s2: the scan runs on s2 instead of s, with this layer's D skip and gate,
    #     i.e. y = alpha(s2.delta, s2.A, s2.B, s2.C) @ s2.u + D * s2.u (returning s itself is
    #     bit-for-bit the plain forward);
    #   - a tensor alpha (B, Di, L, L): y = alpha @ s.u + D * s.u.
    # Either way the gate SiLU(z) follows as usual. Full forward only: `step`/`step_chunk` ignore it.
    attention_override = None

    def __init__(self, d_inner: int, d_state: int, d_conv: int, dt_rank: int,
                 dt_min: float = 1e-3, dt_max: float = 1e-1, dt_floor: float = 1e-4):
        super().__init__()
        self.d_inner, self.d_state, self.d_conv, self.dt_rank = d_inner, d_state, d_conv, dt_rank
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True)

        dt_std = dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -dt_std, dt_std)
        dt = torch.exp(torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)  # (Di, N) S4D-real
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(d_inner))
        for p in (self.dt_proj.weight, self.dt_proj.bias, self.A_log, self.D):
            p._no_reinit = True

    def scan_inputs(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> ScanInputs:
        """x (B, L, Di) -> the scan's inputs (the part of forward before the scan)."""
        length = x.shape[1]
        x = x.transpose(1, 2)  # (B, L, Di) -> (B, Di, L)
        if mask is not None:
            x = x * mask[:, None, :]
        u = F.silu(self.conv1d(x)[..., :length])  # causal: drop the right overhang
        if mask is not None:
            u = u * mask[:, None, :]
        x_dbl = self.x_proj(u.transpose(1, 2))  # (B, L, R + 2N)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = (dt @ self.dt_proj.weight.T).transpose(1, 2)  # (B, L, Di) -> (B, Di, L)
        return ScanInputs(u=u, delta=delta, A=-torch.exp(self.A_log.float()),
                          B=B.transpose(1, 2).contiguous(), C=C.transpose(1, 2).contiguous(),
                          delta_bias=self.dt_proj.bias.float())

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, z: torch.Tensor | None = None):
        """x (B, L, Di), optional gate z (B, L, Di) -> (B, L, Di)."""
        if self.uses_node(x):
            return self.forward_node(x if z is None else torch.cat((x, z), dim=-1), mask, has_z=z is not None)
        s = self.scan_inputs(x, mask)
        z = None if z is None else z.transpose(1, 2)
        if self.attention_override is not None:
            return self._overridden(s, mask, z).transpose(1, 2)
        y = selective_scan_fn(s.u, s.delta, s.A, s.B, s.C, self.D.float(), z=z,
                              delta_bias=s.delta_bias, delta_softplus=True)
        return y.transpose(1, 2)  # (B, Di, L) -> (B, L, Di)

    def uses_node(self, x: torch.Tensor) -> bool:
        """Whether forward takes the SSM node (`ssm_path`) for x; never with an attention override."""
        return (self.attention_override is None and x.dtype == self.x_proj.weight.dtype
                and ssm_path(x) == "node")

    def forward_node(self, xz: torch.Tensor, mask: torch.Tensor | None = None, has_z: bool = False):
        """The SSM node: xz = x (B, L, Di), or [x, z] (B, L, 2 Di) with has_z -> (B, L, Di).
        Equal to the plain forward up to float rounding (tests/models/test_ssm_node.py)."""
        dtype = xz.dtype  # A, D and the dt bias as the plain forward computes them (float32, promoted)
        A = (-torch.exp(self.A_log.float())).to(dtype)
        return _numba_ssm().ssm_node(xz, mask, self.conv1d.weight, self.conv1d.bias, self.x_proj.weight,
                                     self.dt_proj.weight, self.dt_proj.bias.float().to(dtype), A,
                                     self.D.float().to(dtype), has_z)

    def _overridden(self, s: ScanInputs, mask, z) -> torch.Tensor:
        """The scan output (B, Di, L) with the hidden attention `attention_override` gives."""
        out = self.attention_override(s, mask)
        if isinstance(out, ScanInputs):  # the attention of other scan inputs, same D skip and gate
            return selective_scan_fn(out.u, out.delta, out.A, out.B, out.C, self.D.float(), z=z,
                                     delta_bias=out.delta_bias, delta_softplus=True)
        y = (out @ s.u[..., None])[..., 0]  # alpha (B, Di, L, L) @ u (B, Di, L, 1) -> (B, Di, L)
        return apply_skip_and_gate(y, s.u, self.D.float(), z)

    def init_cache(self, batch_size: int, device=None, dtype=torch.float32) -> SSMCache:
        return SSMCache(
            conv_state=torch.zeros(batch_size, self.d_inner, self.d_conv - 1, device=device, dtype=dtype),
            ssm_state=torch.zeros(batch_size, self.d_inner, self.d_state, device=device, dtype=dtype),
        )

    def step(self, x_t: torch.Tensor, cache: SSMCache, z_t: torch.Tensor | None = None):
        """One token: x_t (B, Di) -> (y_t (B, Di), new cache). O(Di * N) work, no sequence."""
        window = torch.cat([cache.conv_state, x_t[:, :, None]], dim=-1)  # (B, Di, W)
        u = F.silu((window * self.conv1d.weight[:, 0, :]).sum(-1) + self.conv1d.bias)  # (B, Di)
        dt, B, C = torch.split(self.x_proj(u), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt))  # (B, Di)
        A = -torch.exp(self.A_log.float())
        h = torch.exp(delta[:, :, None] * A) * cache.ssm_state + (delta * u)[:, :, None] * B[:, None, :]
        y = torch.einsum("bdn,bn->bd", h, C) + self.D * u
        if z_t is not None:
            y = y * F.silu(z_t)
        return y, SSMCache(conv_state=window[:, :, 1:], ssm_state=h)

    def step_chunk(self, x: torch.Tensor, cache: SSMCache, z: torch.Tensor | None = None):
        """A few tokens: x (B, T, Di) -> (y (B, T, Di), new cache); equals T calls of `step`."""
        window = torch.cat([cache.conv_state, x.transpose(1, 2)], dim=-1)  # (B, Di, W-1+T)
        taps = window.unfold(-1, self.d_conv, 1)  # (B, Di, W-1+T) -> (B, Di, T, W)
        # a depthwise conv1d call costs more than its arithmetic at this size: multiply the taps
        u = F.silu((taps * self.conv1d.weight[:, 0, None, :]).sum(-1) + self.conv1d.bias[:, None])  # (B, Di, T)
        dt, B, C = torch.split(self.x_proj(u.transpose(1, 2)), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = (dt @ self.dt_proj.weight.T).transpose(1, 2)  # (B, T, Di) -> (B, Di, T)
        y, h = selective_scan_with_state(
            u, delta, -torch.exp(self.A_log.float()), B.transpose(1, 2), C.transpose(1, 2), self.D.float(),
            z=None if z is None else z.transpose(1, 2), delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True, initial_state=cache.ssm_state)
        conv_state = window[:, :, window.shape[-1] - (self.d_conv - 1):]
        return y.transpose(1, 2), SSMCache(conv_state=conv_state, ssm_state=h)  # (B, Di, T) -> (B, T, Di)


class MambaMixer(nn.Module):
    """The Mamba block: (B, L, D) -> (B, L, D)."""

    def __init__(self, d_model: int, d_state: int, d_conv: int, expand: int, dt_rank: int):
        super().__init__()
        d_inner = expand * d_model
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.ssm = SelectiveSSM(d_inner, d_state, d_conv, dt_rank)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        self.out_proj._is_residual_projection = True

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        xz = self.in_proj(x)  # (B, L, 2Di)
        if self.ssm.uses_node(xz):  # x and z stay side by side: their gradients land in one buffer
            return self.out_proj(self.ssm.forward_node(xz, mask, has_z=True))
        x, z = xz.chunk(2, dim=-1)  # (B, L, 2Di) -> 2 x (B, L, Di)
        return self.out_proj(self.ssm(x, mask, z=z))

    def scan_inputs(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> ScanInputs:
        x, _ = self.in_proj(x).chunk(2, dim=-1)
        return self.ssm.scan_inputs(x, mask)

    def init_cache(self, batch_size: int, device=None, dtype=torch.float32) -> SSMCache:
        return self.ssm.init_cache(batch_size, device, dtype)

    def step(self, x_t: torch.Tensor, cache: SSMCache):
        x_t, z_t = self.in_proj(x_t).chunk(2, dim=-1)  # (B, 2Di) -> 2 x (B, Di)
        y, cache = self.ssm.step(x_t, cache, z_t=z_t)
        return self.out_proj(y), cache

    def step_chunk(self, x: torch.Tensor, cache: SSMCache):
        x, z = self.in_proj(x).chunk(2, dim=-1)  # (B, T, 2Di) -> 2 x (B, T, Di)
        y, cache = self.ssm.step_chunk(x, cache, z=z)
        return self.out_proj(y), cache
