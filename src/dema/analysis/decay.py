"""How the current decision's hidden attention decays with distance into the past (the paper's
Figure 4 and its text: "roughly exponential, with a periodic pattern"), measured and fitted.

Records. For each decision (step t of an episode) and each Mamba layer: the row of the hidden
attention at the decision token (s_t, the token the action is read from), averaged over channels
as mean_d |alpha_{p, p-k}| for distance k = 0, 1, ... tokens into the past (k = 0 is s_t itself).
Padded tokens (left padding of the window) have no value (NaN). Two views:

- window:  the K-step window the Transformer-like model re-reads at decision t (what it acts on);
- episode: the whole episode up to t (what RNN-like DeMa's recurrent state carries; for a
           Transformer-like model, its attention over a sequence longer than it was trained on).

The decisions come from episodes the trained policy plays in the simulator (`rollout_episodes`,
what it saw when acting) or from the run's dataset (`dataset_episodes`).

Curve and fits (`analyse`). Per layer the records are averaged over decisions at each distance
(the mean over the decisions that reach that distance; `count` says how many). On distances
1..k_max (k_max: the largest distance that at least half the decisions reach) and on the far part
k >= `far` (default 10), two models are fitted by least squares on ln(y):

- exponential  y = a * exp(-rate * k)      (straight on a semi-log plot)
- power law    y = a * k^(-exponent)       (straight on a log-log plot)

with R^2 of each fit in log space and AIC = n ln(RSS / n) + 2 * 2 (both have two parameters, so the
lower AIC is the better fit and the AIC difference is n ln(RSS_exp / RSS_pow)).

Periodic pattern over the three token types of a step (R, a, s in DeMa's order): the log10 curve
minus its centred 3-token moving average (which removes any smooth trend and keeps the period-3
part), then (1) the mean of that residual per token type, as a factor 10^mean ("a tokens get 1.6x
the attention of their neighbours"), and (2) the fraction of the residual's variance in its
period-3 Fourier component (1: a pure period-3 pattern; about 2/n for noise).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import numpy as np
import torch

from dema.attention import hidden_attention_last_row
from dema.data.batch import Batch
from dema.models.config import TokenLayout, TokenOrder
from dema.scan import compute_paths

VIEWS = ("window", "episode")


def token_types(order: TokenOrder, tokens_per_step: int) -> tuple[str, ...]:
    """The token types of one step, in sequence order."""
    if tokens_per_step == 1:
        return ("step",)
    return {TokenOrder.RETURN_STATE_ACTION: ("R", "s", "a"), TokenOrder.RETURN_PREV_ACTION_STATE: ("R", "a", "s"),
            TokenOrder.PREV_ACTION_RETURN_STATE: ("a", "R", "s")}[order]


def decision_token(order: TokenOrder, tokens_per_step: int) -> int:
    """Index within a step of the token the action is read from (s_t)."""
    if tokens_per_step == 1:
        return 0
    return 1 if order is TokenOrder.RETURN_STATE_ACTION else 2


# ----------------------------------------------------------------------------- records


@dataclass
class DecayRecords:
    """Raw records: one channel-mean |alpha| row per decision and layer, by distance (NaN: no token)."""

    rows: np.ndarray  # (decisions, layers, distances) float32
    episode: np.ndarray  # (decisions,) index of the episode
    step: np.ndarray  # (decisions,) step t of the decision
    types_by_distance: list[str]  # token type at distance k, for k = 0, 1, 2 (periodic in k)
    view: str
    meta: dict

    def save(self, path) -> None:
        from dema.files import atomic_write

        meta = {**self.meta, "view": self.view, "types_by_distance": self.types_by_distance}
        atomic_write(path, lambda p: np.savez_compressed(p, rows=self.rows, episode=self.episode, step=self.step,
                                                         meta=np.array(json.dumps(meta))))

    @classmethod
    def load(cls, path) -> "DecayRecords":
        with np.load(path) as f:
            meta = json.loads(str(f["meta"]))
            return cls(f["rows"], f["episode"], f["step"], meta.pop("types_by_distance"), meta.pop("view"), meta)


def _mamba_mixers(policy):
    return [block.mixer for block in policy.blocks if hasattr(getattr(block, "mixer", None), "scan_inputs")]


@torch.no_grad()
def decision_rows(policy, batch: Batch, positions: list[list[int]]) -> list[np.ndarray]:
    """For batch element b and each token index p in positions[b]: the channel-mean |alpha| row of p
    per layer, by distance k = p - j (k = 0..p); NaN at padded tokens. Returns one (layers, p + 1)
    array per (b, p), in order."""
    mixers = _mamba_mixers(policy)
    captured = []
    handles = [m.register_forward_pre_hook(lambda mod, args: captured.append((mod, args[0], args[1])))
               for m in mixers]
    try:
        _, mask = policy.hidden_states(batch)
    finally:
        for h in handles:
            h.remove()
    inputs = [mixer.scan_inputs(x, m) for mixer, x, m in captured]
    out = []
    for b, ps in enumerate(positions):
        for p in ps:
            layers = []
            for s in inputs:
                row = hidden_attention_last_row(s.delta[b:b + 1, :, :p + 1], s.A, s.B[b:b + 1, :, :p + 1],
                                                s.C[b:b + 1, :, :p + 1], delta_bias=s.delta_bias,
                                                delta_softplus=True)  # (1, Di, p + 1)
                value = row[0].abs().mean(0).double().cpu().numpy()
                value[~mask[b, :p + 1].cpu().numpy()] = np.nan
                layers.append(value[::-1])  # by distance: k = 0 is p itself
            out.append(np.stack(layers))
    return out


@torch.no_grad()
def _window_rows(policy, windows: list[Batch], position: int, chunk: int = 32) -> list[np.ndarray]:
    out = []
    for start in range(0, len(windows), chunk):
        part = windows[start:start + chunk]
        batch = Batch(**{f.name: torch.cat([getattr(w, f.name) for w in part]) for f in dataclasses.fields(Batch)})
        out += decision_rows(policy, batch, [[position]] * len(part))
    return out


def window_at(episode: Batch, t: int, context_len: int) -> Batch:
    """The K-step window of decision t of a (1, T) episode, left-padded as the window agent does
    (zeros, mask False); the last position's action (not taken yet) is zero."""
    lo = max(0, t - context_len + 1)
    pad = context_len - (t + 1 - lo)
    fields = {}
    for f in dataclasses.fields(Batch):
        value = getattr(episode, f.name)[:, lo:t + 1].clone()
        if f.name == "actions":
            value[:, -1] = 0
        if pad:
            value = torch.cat([torch.zeros_like(value[:, :1]).expand(-1, pad, *value.shape[2:]), value], dim=1)
        fields[f.name] = value
    return Batch(**fields)


def collect(policy, episodes: list[Batch], view: str, every: int, meta: dict) -> DecayRecords:
    """Records of the decisions at steps 0, every, 2 every, ... of each (1, T) episode."""
    cfg = policy.cfg
    per_step = 3 if cfg.layout is TokenLayout.B3LD else 1
    token = decision_token(cfg.token_order, per_step)
    types = token_types(cfg.token_order, per_step)
    rows, episode_index, steps = [], [], []
    for e, ep in enumerate(episodes):
        decisions = list(range(0, ep.length, every))
        if view == "window":
            windows = [window_at(ep, t, cfg.context_len) for t in decisions]
            rows += _window_rows(policy, windows, (cfg.context_len - 1) * per_step + token)
        else:
            rows += decision_rows(policy, ep, [[t * per_step + token for t in decisions]])
        episode_index += [e] * len(decisions)
        steps += decisions
    width = max(r.shape[1] for r in rows)
    table = np.full((len(rows), rows[0].shape[0], width), np.nan, dtype=np.float32)
    for i, r in enumerate(rows):
        table[i, :, :r.shape[1]] = r
    by_distance = [types[(token - k) % per_step] for k in range(min(3, per_step))] if per_step == 3 else ["step"]
    return DecayRecords(table, np.asarray(episode_index), np.asarray(steps), by_distance, view,
                        {**meta, "every": every, "tokens_per_step": per_step, "context_len": cfg.context_len,
                         "n_layer": int(table.shape[1])})


# ----------------------------------------------------------------------------- episodes


class _Recorder(torch.nn.Module):
    """Acts like `policy` (window or recurrent agent) and records, per step, what the decision saw."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy
        self.cfg = policy.cfg  # what the agents look at to choose their path
        self.steps: list[dict] = []

    def _record(self, state, prev_action, rtg, timestep, action):
        self.steps.append({"states": state.detach().cpu().clone(), "prev_actions": prev_action.detach().cpu().clone(),
                           "returns_to_go": rtg.detach().cpu().clone(), "timesteps": timestep.detach().cpu().clone(),
                           "actions": action.detach().cpu().clone()})

    def predict_last(self, batch):
        action = self.policy.predict_last(batch)
        self._record(batch.states[:, -1], batch.prev_actions[:, -1], batch.returns_to_go[:, -1],
                     batch.timesteps[:, -1], action)
        return action

    def init_cache(self, n, device=None):
        return self.policy.init_cache(n, device)

    def step(self, state, prev_action, rtg, timestep, cache):
        action, cache = self.policy.step(state, prev_action, rtg, timestep, cache)
        self._record(state, prev_action, rtg, timestep, action)
        return action, cache


def rollout_episodes(policy, run, episodes: int, seed: int = 0, target: float | None = None,
                     max_episode_steps: int = 0) -> tuple[list[Batch], list[float]]:
    """Play `episodes` episodes (environment i reset with seed * 10000 + i, as `dema eval`) and
    return them as (1, T) batches of what the policy saw, with their returns."""
    from dema.evaluation.agent import make_agent
    from dema.evaluation.rollout import run_episodes

    cfg = run.config.model
    recorder = _Recorder(policy).eval()
    target = run.spec.return_targets[0] if target is None else target
    # RNN-like acting through `policy.step`, so that the recorder sees every decision: the fused
    # acting step (dema.models.fused_step, the same decision in one Numba call, tested equal to
    # 1e-5) is off in this block, and only here (dema.scan.paths)
    with compute_paths(fused_step=False):
        result = run_episodes(lambda n: make_agent(recorder, run.stats, run.spec, cfg, n),
                              run.spec, episodes, seed * 10_000, target, max_envs=episodes,
                              max_episode_steps=max_episode_steps)
    out = []
    for i, length in enumerate(result.lengths):
        steps = recorder.steps[:length]
        fields = {k: torch.stack([s[k][i] for s in steps])[None] for k in steps[0]}
        fields["mask"] = torch.ones(1, length, dtype=torch.bool)
        out.append(Batch(**fields))
    return out, list(result.returns)


def dataset_episodes(run, episodes: int, dataset: str | None = None) -> list[Batch]:
    """The first `episodes` episodes of the run's dataset (normalised with the run's statistics)."""
    from dema.analysis.hidden_attention import episode_prefix
    from dema.data.load import load_dataset
    from dema.data.trajectories import TrajectoryDataset

    data = TrajectoryDataset(load_dataset(dataset or run.config.data.dataset), run.config.model.context_len,
                             run.config.data.reward_scale, state_mean=run.stats.state_mean,
                             state_std=run.stats.state_std)
    chosen = range(min(episodes, len(data.episodes)))
    return [episode_prefix(data, e, data.episodes[e].length) for e in chosen]


# ----------------------------------------------------------------------------- fits


def _ols(x: np.ndarray, ln_y: np.ndarray) -> tuple[float, float, float, float]:
    """ln_y = intercept + slope * x: (slope, intercept, RSS, R^2)."""
    slope, intercept = np.polyfit(x, ln_y, 1)
    rss = float(np.sum((ln_y - (intercept + slope * x)) ** 2))
    tss = float(np.sum((ln_y - ln_y.mean()) ** 2))
    return float(slope), float(intercept), rss, (1.0 - rss / tss) if tss > 0 else 1.0


def _aic(n: int, rss: float, k: int = 2) -> float:
    return n * math.log(max(rss, 1e-300) / n) + 2 * k


def fit_exponential(distance, value) -> dict:
    """y = a exp(-rate k), least squares on ln y."""
    k, y = np.asarray(distance, float), np.asarray(value, float)
    slope, intercept, rss, r2 = _ols(k, np.log(y))
    return {"rate": -slope, "amplitude": math.exp(intercept), "half_distance": math.log(2) / -slope if slope < 0 else None,
            "r2_log": r2, "aic": _aic(len(k), rss), "n": len(k)}


def fit_power_law(distance, value) -> dict:
    """y = a k^(-exponent) (k >= 1), least squares on ln y against ln k."""
    k, y = np.asarray(distance, float), np.asarray(value, float)
    slope, intercept, rss, r2 = _ols(np.log(k), np.log(y))
    return {"exponent": -slope, "amplitude": math.exp(intercept), "r2_log": r2, "aic": _aic(len(k), rss), "n": len(k)}


def compare_fits(distance, value) -> dict | None:
    """Both fits on the positive finite points; None with fewer than 4 points."""
    k, y = np.asarray(distance, float), np.asarray(value, float)
    keep = np.isfinite(y) & (y > 0) & (k >= 1)
    if keep.sum() < 4:
        return None
    exp, power = fit_exponential(k[keep], y[keep]), fit_power_law(k[keep], y[keep])
    better = "exponential" if exp["aic"] < power["aic"] else "power law"
    return {"range": [int(k[keep].min()), int(k[keep].max())], "exponential": exp, "power_law": power,
            "better": better, "aic_exp_minus_power": exp["aic"] - power["aic"]}


def periodicity(distance, value, types_by_distance: list[str]) -> dict | None:
    """The period-3 pattern over token types: residual of log10 y from its centred 3-token moving
    average, its mean per token type (and as a factor), and the variance fraction at period 3."""
    if len(types_by_distance) != 3:
        return None
    k, y = np.asarray(distance, int), np.asarray(value, float)
    keep = np.isfinite(y) & (y > 0)
    k, log_y = k[keep], np.log10(y[keep])
    inner = [i for i in range(1, len(k) - 1) if k[i - 1] == k[i] - 1 and k[i + 1] == k[i] + 1]
    if len(inner) < 6:
        return None
    idx = np.asarray(inner)
    residual = log_y[idx] - (log_y[idx - 1] + log_y[idx] + log_y[idx + 1]) / 3
    per_type = {}
    for phase in range(3):
        sel = (k[idx] % 3) == phase
        if sel.any():
            mean = float(residual[sel].mean())
            per_type[types_by_distance[phase]] = {"log10_vs_neighbours": mean, "factor": 10 ** mean}
    centred = residual - residual.mean()
    var = float(np.mean(centred ** 2))
    c = np.sum(centred * np.exp(-2j * np.pi * k[idx] / 3))
    fraction = float(2 * abs(c) ** 2 / len(idx) ** 2 / var) if var > 1e-20 else 0.0  # no residual: no pattern
    return {"per_type": per_type, "period3_variance_fraction": min(fraction, 1.0), "n": len(idx),
            "residual_std_log10": math.sqrt(var)}


def curve(records: DecayRecords) -> tuple[np.ndarray, np.ndarray]:
    """(mean over decisions (layers, distances), count (distances,)) ignoring missing tokens."""
    rows = records.rows.astype(np.float64)
    count = np.sum(np.isfinite(rows[:, 0, :]), axis=0)
    with np.errstate(invalid="ignore"):
        mean = np.nansum(rows, axis=0) / np.maximum(count, 1)
    mean[:, count == 0] = np.nan
    return mean, count


def analyse(records: DecayRecords, far: int = 10, min_count_fraction: float = 0.5) -> dict:
    """The fits and the periodic pattern per layer (see the module docstring)."""
    mean, count = curve(records)
    reached = np.nonzero(count >= min_count_fraction * count.max())[0]
    k_max = int(reached.max()) if len(reached) else 0
    distance = np.arange(mean.shape[1])
    per_step = records.meta.get("tokens_per_step", 3)
    types = [records.types_by_distance[k % len(records.types_by_distance)] for k in distance]
    layers = []
    for layer in range(mean.shape[0]):
        y = mean[layer]
        sel = (distance >= 1) & (distance <= k_max)
        far_sel = (distance >= far) & (distance <= k_max)
        by_type = {t: float(np.nanmean(y[sel][[types[k] == t for k in distance[sel]]]))
                   for t in dict.fromkeys(records.types_by_distance)} if sel.any() else {}
        layers.append({
            "layer": layer,
            "self": float(y[0]) if np.isfinite(y[0]) else None,
            "fit_all": compare_fits(distance[sel], y[sel]),
            "fit_far": compare_fits(distance[far_sel], y[far_sel]),
            "periodic": periodicity(distance[sel], y[sel], records.types_by_distance) if per_step == 3 else None,
            "mean_by_type": by_type,
        })
    return {"view": records.view, "decisions": int(records.rows.shape[0]), "k_max": k_max, "far": far,
            "types_by_distance": records.types_by_distance, "layers": layers, **records.meta}


def curve_rows(records: DecayRecords) -> list[dict]:
    """decay.csv: layer, distance, token type, mean channel-mean |alpha|, decisions."""
    mean, count = curve(records)
    types = records.types_by_distance
    return [{"layer": layer, "distance": k, "token_type": types[k % len(types)],
             "mean_abs_alpha": float(mean[layer, k]), "decisions": int(count[k])}
            for layer in range(mean.shape[0]) for k in range(mean.shape[1]) if count[k] > 0]


def summary_lines(report: dict) -> list[str]:
    lines = []
    for layer in report["layers"]:
        parts = [f"layer {layer['layer']}:"]
        for name in ("fit_all", "fit_far"):
            f = layer[name]
            if f is None:
                continue
            parts.append(f"[{f['range'][0]}-{f['range'][1]}] exp rate {f['exponential']['rate']:.3f}/token "
                         f"(R2 {f['exponential']['r2_log']:.2f}), power exponent {f['power_law']['exponent']:.2f} "
                         f"(R2 {f['power_law']['r2_log']:.2f}), AIC favours {f['better']} "
                         f"({f['aic_exp_minus_power']:+.1f});")
        p = layer["periodic"]
        if p:
            factors = ", ".join(f"{t} x{v['factor']:.2f}" for t, v in p["per_type"].items())
            parts.append(f"period 3: {factors}, {100 * p['period3_variance_fraction']:.0f}% of the residual variance")
        lines.append(" ".join(parts))
    return lines


# ----------------------------------------------------------------------------- figure


def plot(records: DecayRecords, report: dict, path, title: str) -> None:
    """Per layer: the curve on semi-log (exponential = straight) and log-log (power law = straight)
    axes, points coloured by token type, both fits over their range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean, _ = curve(records)
    n = mean.shape[0]
    fig, axes = plt.subplots(2, n, figsize=(3.4 * n, 5.6), squeeze=False)
    distance = np.arange(mean.shape[1])
    types = records.types_by_distance
    colors = {"R": "tab:green", "a": "tab:orange", "s": "tab:blue", "step": "tab:blue"}
    k_max = report["k_max"]
    for layer in range(n):
        y = mean[layer]
        fit = report["layers"][layer]["fit_all"]
        for row, scale in ((0, "linear"), (1, "log")):
            ax = axes[row, layer]
            for phase, t in enumerate(types):
                sel = (distance % len(types) == phase) & np.isfinite(y) & (y > 0) & (distance <= max(k_max, 1))
                if row == 1:
                    sel &= distance >= 1
                ax.scatter(distance[sel], y[sel], s=6, color=colors.get(t, "gray"), label=t)
            if fit is not None:
                k = np.linspace(max(fit["range"][0], 1), fit["range"][1], 200)
                e, p = fit["exponential"], fit["power_law"]
                ax.plot(k, e["amplitude"] * np.exp(-e["rate"] * k), "k-", lw=1, label=f"exp (R2 {e['r2_log']:.2f})")
                ax.plot(k, p["amplitude"] * k ** -p["exponent"], "r--", lw=1, label=f"power (R2 {p['r2_log']:.2f})")
            ax.set_yscale("log")
            ax.set_xscale(scale)
            ax.set_xlabel("distance into the past (tokens)" + (", log" if row else ""), fontsize=8)
            ax.set_title(f"layer {layer}", fontsize=9)
            ax.tick_params(labelsize=7)
            if layer == 0:
                ax.set_ylabel("mean |alpha| (channel mean)", fontsize=8)
            if layer == 0 and row == 0:
                ax.legend(fontsize=6, markerscale=2)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
