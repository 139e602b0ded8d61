"""Layer surgery on DeMa's hidden attention (the paper's Figure 5): what is the policy without it?

A Mamba layer's scan output is y = alpha @ u + D * u (then the gate SiLU(z)), with alpha the
layer's hidden attention (B, Di, L, L) over the post-conv sequence u (dema.attention). A
manipulation replaces alpha in one layer, or in every layer ("all"), and leaves everything else
(u, the D skip, the gate, the other layers' parameters) as it is. Layers are numbered from 0
(`policy.blocks[i]`). The manipulations, exactly:

- zero:   alpha = 0, so y = D * u (gated). Done as the layer's own scan with C = 0.
- swap i with j:  layer i uses the hidden attention of layer j: alpha_j, the attention layer j
          computes from its own input in the INTACT forward of the same window (a first pass
          without manipulation records it), applied to layer i's own u:
          y_i = alpha_j @ u_i + D_i * u_i. Done as the scan of u_i with layer j's (delta, A, B, C,
          dt bias). For j < i, alpha_j is also what layer j computes in the manipulated forward
          (the layers below i are untouched); for j > i it cannot be, since layer j's input then
          depends on layer i's output. Swapping a layer with itself is the identity: the same scan
          call on the same numbers, so it reproduces the intact actions bit for bit (tested).
          "all": the cyclic shift, layer i uses layer (i + 1) mod n's attention.
- random: alpha is replaced by a random attention with the same row sums: for each channel d and
          row i, alpha'_{i,j} = s_i * w_{i,j} over the real (unpadded) tokens j <= i, where
          s_i = sum_j alpha_{i,j} is the intact row's sum (its response to a constant input,
          computed exactly as the layer's scan of a sequence of ones) and w_{i,.} are independent
          Uniform(0, 1) draws normalised to sum to one over those j. The draws are fixed per
          (seed, layer): the same random pattern at every decision and for every environment. The
          row sum is the scale kept because it is exact and costs one scan; a row norm would need
          the full (B, Di, L, L) alpha at every decision (0.2 s per layer per decision at K 20 on
          this project's CPU).

Surgery is defined on the K-step window that Transformer-like DeMa re-reads at every decision.
RNN-like DeMa acts through its recurrent state; its hidden attention spans the whole episode, so a
window manipulation does not apply to it and `check_surgery_model` refuses it.

`SurgeryPolicy(policy, manipulation)` acts like `policy` (it has `predict_last`, so the window agent
of dema.evaluation drives it) with the manipulation applied on every forward; `run_surgery` scores
the intact model and every manipulation with the same evaluation seeds and episodes, so the
environments start from the same states and the differences are the manipulation's alone.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from dema.errors import DemaError
from dema.models.mamba import MambaMixer, ScanInputs, SelectiveSSM
from dema.scan import compute_paths, selective_scan_fn

KINDS = ("zero", "random", "swap")


class SurgeryError(DemaError):
    """A model or a manipulation surgery cannot work on."""


@dataclass(frozen=True)
class Manipulation:
    kind: str  # "zero", "random" or "swap"
    layer: int | str  # a layer index, or "all"
    with_: int | None = None  # swap: the layer whose attention `layer` uses (None for "all": cyclic)

    def label(self) -> str:
        if self.kind == "swap":
            return f"swap {self.layer}<-{'next' if self.with_ is None else self.with_}"
        return f"{self.kind} {self.layer}"

    def to_dict(self, n_layer: int) -> dict:
        out = {"kind": self.kind, "layer": self.layer}
        if self.kind == "swap":
            out["with"] = self.with_ if self.layer != "all" else [(i + 1) % n_layer for i in range(n_layer)]
        return out

    def targets(self, n_layer: int) -> list[int]:
        return list(range(n_layer)) if self.layer == "all" else [int(self.layer)]

    def source(self, layer: int, n_layer: int) -> int:
        """swap: the layer whose attention `layer` uses."""
        return (layer + 1) % n_layer if self.layer == "all" else int(self.with_)


def mamba_layers(policy) -> list[SelectiveSSM]:
    """The selective scans of a policy, one per layer (Mamba block or bare S6); [] if none."""
    layers = []
    for block in getattr(policy, "blocks", []):
        mixer = getattr(block, "mixer", None)
        if isinstance(mixer, MambaMixer):
            layers.append(mixer.ssm)
        elif isinstance(mixer, SelectiveSSM):
            layers.append(mixer)
    return layers


def check_surgery_model(policy) -> int:
    """The number of Mamba layers; raises SurgeryError for models surgery does not apply to."""
    n = len(mamba_layers(policy))
    if n == 0:
        raise SurgeryError(f"the model has no Mamba layers ({policy.cfg.block.value} blocks): it has no hidden "
                           f"attention to manipulate; give a DeMa run")
    if policy.cfg.recurrent:
        raise SurgeryError("RNN-like DeMa acts through its recurrent state, whose hidden attention spans the whole "
                           "episode; surgery manipulates the attention over the K-step window that Transformer-like "
                           "DeMa re-reads at each decision, so it is defined for Transformer-like runs only")
    return n


def default_manipulations(n_layer: int, kinds=KINDS, layers: list[int] | None = None,
                          identity: bool = True) -> list[Manipulation]:
    """Every kind on each layer (or `layers`) and on all layers; swaps with every other layer; plus
    the identity check (swap of the first layer with itself) when `identity`."""
    chosen = list(range(n_layer)) if layers is None else list(layers)
    for layer in chosen:
        check_layer(layer, n_layer)
    out = []
    for kind in kinds:
        if kind not in KINDS:
            raise SurgeryError(f"unknown manipulation {kind!r}; choose from {', '.join(KINDS)}")
        for layer in chosen:
            if kind == "swap":
                out += [Manipulation("swap", layer, j) for j in range(n_layer) if j != layer]
            else:
                out.append(Manipulation(kind, layer))
        if n_layer > 1 or kind != "swap":
            out.append(Manipulation(kind, "all"))
    if identity:
        out.append(Manipulation("swap", chosen[0] if chosen else 0, chosen[0] if chosen else 0))
    return out


def check_layer(layer: int, n_layer: int) -> None:
    if not 0 <= layer < n_layer:
        raise SurgeryError(f"layer {layer} is out of range: the model has {n_layer} Mamba layers "
                           f"(0 to {n_layer - 1})")


# ----------------------------------------------------------------------------- the overrides


def _zero(s: ScanInputs, mask) -> ScanInputs:
    return dataclasses.replace(s, C=torch.zeros_like(s.C))


def _swap(source: ScanInputs):
    def override(s: ScanInputs, mask) -> ScanInputs:
        return dataclasses.replace(source, u=s.u)

    return override


class _Random:
    """alpha' = (intact row sums) x (fixed random convex weights over the real causal past)."""

    def __init__(self, seed: int):
        self.seed, self._weights = seed, {}

    def _uniform(self, d_inner: int, length: int, dtype, device) -> torch.Tensor:
        key = (d_inner, length, dtype, str(device))
        if key not in self._weights:
            gen = torch.Generator().manual_seed(self.seed)
            self._weights[key] = torch.rand(d_inner, length, length, generator=gen, dtype=torch.float64).to(
                dtype=dtype, device=device)
        return self._weights[key]

    def __call__(self, s: ScanInputs, mask) -> torch.Tensor:
        batch, d_inner, length = s.u.shape
        real = torch.ones(batch, length, dtype=s.u.dtype, device=s.u.device) if mask is None else mask.to(s.u.dtype)
        ones = real[:, None, :].expand(batch, d_inner, length).contiguous()
        row_sum = selective_scan_fn(ones, s.delta, s.A, s.B, s.C, delta_bias=s.delta_bias, delta_softplus=True)
        causal = torch.ones(length, length, dtype=torch.bool, device=s.u.device).tril()
        allowed = causal[None] & (real[:, None, :] > 0)  # (B, L, L): real j <= i
        w = self._uniform(d_inner, length, s.u.dtype, s.u.device)[None] * allowed[:, None].to(s.u.dtype)
        w = w / w.sum(-1, keepdim=True).clamp_min(torch.finfo(s.u.dtype).tiny)  # rows without real j stay 0
        return row_sum[..., None] * w  # (B, Di, L, 1) * (B, Di, L, L)


@contextmanager
def overrides(layers: list[SelectiveSSM], fns: dict[int, object]):
    """Set `attention_override` on the given layers for the duration of the block."""
    try:
        for i, fn in fns.items():
            layers[i].attention_override = fn
        yield
    finally:
        for i in fns:
            layers[i].attention_override = None


@torch.no_grad()
def record_scan_inputs(policy, batch, which: list[int]) -> dict[int, ScanInputs]:
    """The ScanInputs of layers `which` in the intact forward of `batch`."""
    layers, seen = mamba_layers(policy), {}

    def recorder(i):
        def record(s, mask):
            seen[i] = s
            return s

        return record

    with overrides(layers, {i: recorder(i) for i in which}):
        policy(batch)
    return seen


class SurgeryPolicy(nn.Module):
    """`policy` with `manipulation` applied on every forward; acts through `predict_last`."""

    def __init__(self, policy, manipulation: Manipulation | None, seed: int = 0):
        super().__init__()
        self.policy, self.manipulation = policy, manipulation
        self.layers = mamba_layers(policy)
        n = len(self.layers)
        if manipulation is not None:
            for layer in manipulation.targets(n):
                check_layer(layer, n)
            if manipulation.kind == "swap" and manipulation.layer != "all":
                check_layer(int(manipulation.with_), n)
        self._random = {i: _Random(seed * 1000 + i) for i in range(n)}

    def forward(self, batch):
        # the plain SSM forward for the intact model and every manipulation alike (the SSM node differs
        # from it by float rounding): an identity manipulation stays bitwise the intact model
        with compute_paths(ssm="ref"):
            return self._forward(batch)

    def _forward(self, batch):
        m = self.manipulation
        if m is None:
            return self.policy(batch)
        n = len(self.layers)
        targets = m.targets(n)
        if m.kind == "zero":
            fns = {i: _zero for i in targets}
        elif m.kind == "random":
            fns = {i: self._random[i] for i in targets}
        else:
            sources = record_scan_inputs(self.policy, batch, sorted({m.source(i, n) for i in targets}))
            fns = {i: _swap(sources[m.source(i, n)]) for i in targets}
        with overrides(self.layers, fns):
            return self.policy(batch)

    @torch.no_grad()
    def predict_last(self, batch) -> torch.Tensor:
        return self(batch)[:, -1]


# ----------------------------------------------------------------------------- scoring


def run_surgery(policy, model_config, stats, spec, manipulations: list[Manipulation], episodes: int,
                seeds: tuple[int, ...], target: float, max_episode_steps: int = 0, max_envs: int = 50,
                seed: int = 0, log=print) -> dict:
    """Score the intact policy and each manipulation with the same seeds and episodes."""
    from dema.evaluation.evaluate import evaluate

    n_layer = check_surgery_model(policy)

    def score(manipulation):
        wrapped = SurgeryPolicy(policy, manipulation, seed)
        result = evaluate(wrapped, model_config, stats, spec, episodes, seeds, (target,), max_envs,
                          max_episode_steps)
        first = result["per_target"][0]
        return {k: first[k] for k in ("normalized_mean", "normalized_std", "return_mean", "return_std",
                                      "returns", "lengths")}

    intact = score(None)
    log(f"  intact            normalized {intact['normalized_mean']:7.2f} +- {intact['normalized_std']:.2f}")
    rows = []
    for m in manipulations:
        row = {**m.to_dict(n_layer), **score(m)}
        row["change"] = row["normalized_mean"] - intact["normalized_mean"]
        log(f"  {m.label():<17} normalized {row['normalized_mean']:7.2f} +- {row['normalized_std']:.2f}"
            f"  ({row['change']:+.2f})")
        rows.append(row)
    return {"intact": intact["normalized_mean"], "intact_detail": intact, "manipulations": rows,
            "n_layer": n_layer, "target": target, "episodes_per_seed": episodes, "seeds": list(seeds),
            "max_episode_steps": max_episode_steps, "random_seed": seed}


# ----------------------------------------------------------------------------- outputs


CSV_FIELDS = ["kind", "layer", "with", "normalized_mean", "normalized_std", "return_mean", "return_std", "change",
              "episodes"]


def csv_rows(report: dict) -> list[dict]:
    """One row for the intact model and one per manipulation (from the raw report)."""
    intact = report["intact_detail"]
    rows = [{"kind": "intact", "layer": "", "with": "", "change": 0.0, "episodes": len(intact["returns"]),
             **{k: intact[k] for k in ("normalized_mean", "normalized_std", "return_mean", "return_std")}}]
    for m in report["manipulations"]:
        w = m.get("with", "")
        rows.append({"kind": m["kind"], "layer": m["layer"], "with": " ".join(map(str, w)) if isinstance(w, list) else w,
                     "change": m["change"], "episodes": len(m["returns"]),
                     **{k: m[k] for k in ("normalized_mean", "normalized_std", "return_mean", "return_std")}})
    return rows


def plot(report: dict, path, title: str) -> None:
    """Bars: normalised score per manipulation, grouped by kind, the intact score as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["manipulations"]
    labels = []
    for m in rows:
        if m["kind"] == "swap":
            w = m["with"]
            labels.append(f"swap {m['layer']}<-{w}" if not isinstance(w, list) else "swap all (cyclic)")
        else:
            labels.append(f"{m['kind']} {m['layer']}")
    colors = {"zero": "tab:red", "random": "tab:orange", "swap": "tab:blue"}
    fig, ax = plt.subplots(figsize=(max(5.0, 0.42 * len(rows) + 1.5), 3.6))
    x = np.arange(len(rows))
    ax.bar(x, [m["normalized_mean"] for m in rows], yerr=[m["normalized_std"] for m in rows], capsize=2,
           color=[colors[m["kind"]] for m in rows], alpha=0.85)
    ax.axhline(report["intact"], color="black", lw=1.2, ls="--", label=f"intact {report['intact']:.1f}")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("normalised score")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
