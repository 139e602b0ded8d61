"""Measures a proposed faster RNN-like acting path against the current one and DT's window.

    python scripts/bench_chunked_step.py

The current `SequencePolicy.step` pushes the three tokens of an environment step (R_t, a_{t-1},
s_t) through every layer one at a time: 9 single-token passes of a Mamba block, each a few dozen
small PyTorch calls. The prototype below (`chunk_step`) pushes the three tokens through each layer
as one length-3 chunk: the causal conv over [cached inputs; chunk] by `unfold` (a depthwise
`conv1d` call costs more than the arithmetic at this size), and the scan continued from the cached
state with `dema.scan.stateful.selective_scan_with_state`. It is checked against `policy.step` on
a few steps before timing. Not wired into the models (src/dema/models/ is another owner's); this
script is the evidence for docs/PERFORMANCE.md, "Acting".
"""

from __future__ import annotations

import json
import sys

import torch
import torch.nn.functional as F

from dema.bench.timing import machine_info, measure_interleaved
from dema.bench.workloads import build, random_batch
from dema.models.mamba import SSMCache
from dema.scan.stateful import selective_scan_with_state


def block_chunk(block, x, cache: SSMCache):
    """One pre-norm Mamba block over a chunk x (B, T, D), continuing from `cache`."""
    mixer, ssm = block.mixer, block.mixer.ssm
    xi, z = mixer.in_proj(block.norm(x)).chunk(2, dim=-1)  # (B, T, 2Di) -> 2 x (B, T, Di)
    window = torch.cat([cache.conv_state, xi.transpose(1, 2)], dim=-1)  # (B, Di, W-1+T)
    taps = window.unfold(-1, ssm.d_conv, 1)  # (B, Di, W-1+T) -> (B, Di, T, W)
    u = F.silu((taps * ssm.conv1d.weight[:, 0, None, :]).sum(-1) + ssm.conv1d.bias[:, None])  # (B, Di, T)
    dt, B, C = torch.split(ssm.x_proj(u.transpose(1, 2)), [ssm.dt_rank, ssm.d_state, ssm.d_state], dim=-1)
    delta = (dt @ ssm.dt_proj.weight.T).transpose(1, 2)  # (B, T, Di) -> (B, Di, T)
    y, h = selective_scan_with_state(u, delta, -torch.exp(ssm.A_log), B.transpose(1, 2), C.transpose(1, 2),
                                     ssm.D, z.transpose(1, 2), ssm.dt_proj.bias, True, initial_state=cache.ssm_state)
    return x + mixer.out_proj(y.transpose(1, 2)), SSMCache(conv_state=window[:, :, -(ssm.d_conv - 1):], ssm_state=h)


@torch.no_grad()
def chunk_step(policy, state, prev_action, return_to_go, timestep, cache):
    """Same contract as `SequencePolicy.step` for B3LD Mamba (pre up-projection) policies."""
    parts = policy._embed_step(state, prev_action, return_to_go, timestep)  # [R_t, a_{t-1}, s_t], each (B, E)
    x = policy.input_proj(torch.stack(parts, dim=1))  # 3 x (B, E) -> (B, 3, D)
    new_cache = []
    for block, layer_cache in zip(policy.blocks, cache):
        x, layer_cache = block_chunk(block, x, layer_cache)
        new_cache.append(layer_cache)
    return policy._head(policy.final_norm(x[:, -1])), new_cache  # the decision is read at s_t


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    policy, state_dim, act_dim = build("dema-rnn")
    policy.eval()
    state, prev_action = torch.randn(1, state_dim), torch.randn(1, act_dim)
    rtg, t = torch.full((1, 1), 3.6), torch.full((1,), 5)
    reference, chunked = policy.init_cache(1, "cpu"), policy.init_cache(1, "cpu")
    worst = 0.0
    with torch.no_grad():
        for _ in range(5):
            s = torch.randn(1, state_dim)
            a_ref, reference = policy.step(s, prev_action, rtg, t, reference)
            a_new, chunked = chunk_step(policy, s, prev_action, rtg, t, chunked)
            worst = max(worst, (a_ref - a_new).abs().max().item())
    if worst > 1e-5:
        print(f"chunk_step differs from policy.step by {worst:.2e}", file=sys.stderr)
        return 1
    dt, dt_state, dt_act = build("dt")
    dt.eval()
    window = random_batch(1, dt.cfg.context_len, dt_state, dt_act)
    caches = [policy.init_cache(1, "cpu"), policy.init_cache(1, "cpu")]

    @torch.no_grad()
    def current():
        _, caches[0] = policy.step(state, prev_action, rtg, t, caches[0])

    def proposed():
        _, caches[1] = chunk_step(policy, state, prev_action, rtg, t, caches[1])

    timings = measure_interleaved({"step": current, "chunk_step": proposed, "dt_window": lambda: dt.predict_last(window)},
                                  repeats=300, warmup=10)
    result = {"max_abs_difference": worst, "timings": timings, **machine_info(),
              "chunk_over_dt_cpu": round(timings["chunk_step"]["cpu_ms"] / timings["dt_window"]["cpu_ms"], 3),
              "step_over_dt_cpu": round(timings["step"]["cpu_ms"] / timings["dt_window"]["cpu_ms"], 3)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
