"""The tables of docs/ANALYSES.md from the JSON `dema surgery` and `dema decay` write (`dema analysis tables`).

For each folder: the surgery table (surgery.json, or RUN/surgery/surgery.json) and the decay tables
of the window view (decay.json, or RUN/decay/decay.json) and of the episode view
(decay-episode.json, or RUN/decay-episode/decay.json), where they exist. A folder is either a
record folder (results/analyses/<cell>/, which scripts/analysis_runs.sh fills) or a run directory
with the commands' own outputs. The docs' tables are pasted from this output, never typed; from the
records in results/analyses/ they can be checked on a clean clone by running it again.
"""

from __future__ import annotations

import json
from pathlib import Path

from dema.errors import DemaError


def _pm(m: dict) -> str:
    return f"{m['normalized_mean']:.1f} +- {m['normalized_std']:.1f}"


def surgery_table(result: dict) -> list[str]:
    n = result["n_layer"]
    found = {}
    for m in result["manipulations"]:
        with_ = m.get("with")
        found[(m["kind"], str(m["layer"]), json.dumps(with_))] = m
    header = "| manipulation | " + " | ".join(f"layer {i}" for i in range(n)) + " | all layers |"
    lines = [header, "| --- |" + " ---: |" * (n + 1)]
    lines.append("| none (intact) |" + " |" * n + f" {result['intact']:.1f} +- "
                 f"{result['intact_detail']['normalized_std']:.1f} |")
    for kind, label in (("zero", "zero"), ("random", "random (row sums kept)")):
        cells = [found.get((kind, str(i), "null")) for i in range(n)] + [found.get((kind, "all", "null"))]
        lines.append(f"| {label} | " + " | ".join(_pm(c) if c else "" for c in cells) + " |")
    for j in range(n):
        cells = []
        for i in range(n):
            m = found.get(("swap", str(i), str(j)))
            cells.append("" if m is None else _pm(m) + (" (identity)" if i == j else ""))
        lines.append(f"| swap with layer {j} | " + " | ".join(cells) + " | |")
    cyclic = next((m for (k, layer, _), m in found.items() if k == "swap" and layer == "all"), None)
    if cyclic is not None:
        lines.append("| swap, cyclic (layer i takes layer i+1's) |" + " |" * n + f" {_pm(cyclic)} |")
    return lines


def _periodic(layer: dict) -> str:
    p = layer["periodic"]
    factors = " / ".join(f"{p['per_type'][t]['factor']:.2f}" for t in ("R", "a", "s"))
    return f"{factors}, {100 * p['period3_variance_fraction']:.0f}%"


def decay_window_table(result: dict) -> list[str]:
    lines = [f"{result['decisions']} decisions, distances 1-{result['k_max']}; returns of the episodes: normalised "
             + ", ".join(f"{s:.1f}" for s in result["normalized_scores"]), "",
             "| layer | attention to s_t itself | exponential rate /token (R² log) | power-law exponent (R² log) | "
             "AIC exp - power | far part k >= 10: rate (R²), exponent (R²) | period 3: factor R / a / s, share |",
             "| --- | ---: | --- | --- | ---: | --- | --- |"]
    for layer in result["layers"]:
        a, f = layer["fit_all"], layer["fit_far"]
        lines.append(
            f"| {layer['layer']} | {layer['self']:.2f} | {a['exponential']['rate']:.3f} ({a['exponential']['r2_log']:.2f}) | "
            f"{a['power_law']['exponent']:.2f} ({a['power_law']['r2_log']:.2f}) | {a['aic_exp_minus_power']:+.0f} | "
            f"{f['exponential']['rate']:.3f} ({f['exponential']['r2_log']:.2f}), {f['power_law']['exponent']:.2f} "
            f"({f['power_law']['r2_log']:.2f}) | {_periodic(layer)} |")
    return lines


def decay_episode_table(result: dict) -> list[str]:
    lines = [f"{result['decisions']} decisions, distances up to {result['k_max']} tokens", "",
             "| layer | exponential rate (R²) | power-law exponent (R²) | AIC exp - power | period 3: factor R / a / s, share |",
             "| --- | --- | --- | ---: | --- |"]
    for layer in result["layers"]:
        a = layer["fit_all"]
        lines.append(f"| {layer['layer']} | {a['exponential']['rate']:.4f} ({a['exponential']['r2_log']:.2f}) | "
                     f"{a['power_law']['exponent']:.2f} ({a['power_law']['r2_log']:.2f}) | "
                     f"{a['aic_exp_minus_power']:+.0f} | {_periodic(layer)} |")
    return lines


# (title, where the JSON is in a record folder or a run directory, its renderer), in the page's order
TABLES = (("surgery", ("surgery.json", "surgery/surgery.json"), surgery_table),
          ("decay, window view", ("decay.json", "decay/decay.json"), decay_window_table),
          ("decay, episode view", ("decay-episode.json", "decay-episode/decay.json"), decay_episode_table))


# what RNN-like DeMa has no use for: it acts on the whole episode, not on a window
NOT_RNN_LIKE = {"surgery": "`dema surgery` refuses RNN-like runs",
                "decay, window view": "its decay is read over whole episodes, the episode view"}


def folder_tables(folder: Path) -> str:
    """Every table of `folder` under `## <folder name>`, a missing one named as not found (or, for an
    RNN-like DeMa's folder, as not applicable)."""
    parts = [f"## {folder.name}\n"]
    found = {name: next((folder / p for p in paths if (folder / p).is_file()), None) for name, paths, _ in TABLES}
    recurrent = any(_is_recurrent(path) for path in found.values() if path is not None)
    for name, paths, render in TABLES:
        path = found[name]
        if path is not None:
            parts.append(f"**{name}** ({path})\n")
            parts.append("\n".join(_render(render, path)) + "\n")
        elif recurrent and name in NOT_RNN_LIKE:
            parts.append(f"**{name}**: not applicable to RNN-like DeMa ({NOT_RNN_LIKE[name]})\n")
        else:
            parts.append(f"**{name}**: {folder / paths[0]} not found\n")
    return "\n".join(parts) + "\n"


def _is_recurrent(path: Path) -> bool:
    """Whether the JSON at `path` is of an RNN-like model (its `model`, a name of the registry)."""
    from dema.models.registry import model_spec

    try:
        model = json.loads(path.read_text()).get("model")
        return bool(model) and bool(model_spec(model).config.get("recurrent"))
    except (OSError, ValueError, AttributeError, DemaError):
        return False


def _render(render, path: Path) -> list[str]:
    try:
        return render(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise DemaError(f"{path}: not the JSON `dema surgery` or `dema decay` writes ({type(exc).__name__}: {exc}); "
                        "write it again with that command") from None
