"""The figures of `dema report` (matplotlib Agg): learning curves, training loss and final-score bars,
one file of each per protocol, and the claims' paired differences."""

from __future__ import annotations

import json
import math
import re
import statistics
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dema.experiments.report.runs import Run, _cell_rank, group_runs, variant_text
from dema.experiments.report.rule import MARGIN
from dema.models.registry import label


def _figure(nrows: int, ncols: int, width: float = 4.2, height: float = 3.2):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    return fig, axes


def _line_label(model: str, variant_key: str) -> str:
    variant = json.loads(variant_key)
    return label(model) + (f" [{variant_text(variant)}]" if variant else "")


def write_figures(runs: list[Run], folder: Path, claims: list[dict] | None = None) -> list[Path]:
    """Learning curves, training loss and final-score bars, one file of each per protocol, and the
    claims' paired differences when `claims` (the report's) has any (matplotlib Agg)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for protocol in sorted({r.protocol for r in runs}):
        mine = [r for r in runs if r.protocol == protocol]
        datasets = sorted({r.dataset for r in mine})
        groups = group_runs(mine)
        cells = sorted({(model, vkey) for (_, _, model, vkey) in groups}, key=lambda c: _cell_rank(*c))
        layout = _Layout(protocol, datasets, groups, cells, {cell: f"C{i % 10}" for i, cell in enumerate(cells)},
                         re.sub(r"[^A-Za-z0-9_.-]+", "_", protocol), folder)
        if any(r.curve for r in mine):
            written.append(_learning_figure(layout))
        if any(r.loss_curve for r in mine):
            written.append(_loss_figure(layout))
        written.append(_scores_figure(layout))
    if any(c["evidence"].get("differences") for c in claims or []):
        written.append(_claims_figure(claims, folder))
    return written


@dataclass
class _Layout:
    """What the figures of one protocol share: panels per dataset, a colour per (model, variant)."""

    protocol: str
    datasets: list[str]
    groups: dict
    cells: list[tuple[str, str]]
    color: dict
    safe: str  # the protocol as a file-name part
    folder: Path

    @property
    def shape(self) -> tuple[int, int]:
        ncols = min(3, len(self.datasets))
        return math.ceil(len(self.datasets) / ncols), ncols


def _panels(layout: _Layout, draw, ylabel: str, title: str, name: str, line_plot: bool = True) -> Path:
    """One panel per dataset: `draw(ax, dataset)` fills it; titles, labels, grid, legend, file."""
    fig, axes = _figure(*layout.shape)
    for ax, dataset in zip(axes, layout.datasets):
        draw(ax, dataset)
        ax.set_title(dataset)
        ax.set_ylabel(ylabel)
        if line_plot:
            ax.set_xlabel("updates")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
        else:
            ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(layout.datasets):]:
        ax.set_visible(False)
    fig.suptitle(f"{title} ({layout.protocol})")
    path = layout.folder / f"{name}_{layout.safe}.png"
    fig.savefig(path, dpi=110)
    return path


def _learning_figure(layout: _Layout) -> Path:
    def draw(ax, dataset):
        for model, vkey in layout.cells:
            group = layout.groups.get((layout.protocol, dataset, model, vkey))
            if not group or not all(r.curve for r in group):
                continue
            steps = sorted(set.intersection(*({s for s, _ in r.curve} for r in group)))
            if not steps:
                continue
            values = np.array([[dict(r.curve)[s] for s in steps] for r in group])  # (seeds, steps)
            color = layout.color[(model, vkey)]
            ax.plot(steps, values.mean(axis=0), label=_line_label(model, vkey), color=color)
            if len(group) > 1:
                ax.fill_between(steps, values.min(axis=0), values.max(axis=0), alpha=0.2, color=color, linewidth=0)

    return _panels(layout, draw, "normalised score", "Learning curves: mean over seeds, band = min to max",
                   "learning_curves")


def _loss_figure(layout: _Layout) -> Path:
    def draw(ax, dataset):
        for model, vkey in layout.cells:
            for i, r in enumerate(layout.groups.get((layout.protocol, dataset, model, vkey)) or []):
                if r.loss_curve:
                    steps, losses = zip(*r.loss_curve)
                    ax.plot(steps, losses, color=layout.color[(model, vkey)], alpha=0.8,
                            label=_line_label(model, vkey) if i == 0 else None)
        ax.set_yscale("log")

    return _panels(layout, draw, "training loss", "Training loss: one line per seed", "loss_curves")


def _scores_figure(layout: _Layout) -> Path:
    def draw(ax, dataset):
        bars = [(m, v, layout.groups[(layout.protocol, dataset, m, v)]) for m, v in layout.cells
                if (layout.protocol, dataset, m, v) in layout.groups]
        means = [statistics.mean(r.final for r in g) for _, _, g in bars]
        stds = [statistics.stdev(r.final for r in g) if len(g) > 1 else 0.0 for _, _, g in bars]
        x = np.arange(len(bars))
        ax.bar(x, means, yerr=[s if s else np.nan for s in stds], capsize=3,  # no error bar for one seed
               color=[layout.color[(m, v)] for m, v, _ in bars])
        for i, (_, _, g) in enumerate(bars):  # every seed's score: with 1-3 seeds the points say more than the bar
            ax.scatter(np.full(len(g), x[i]), [r.final for r in g], s=12, color="black", zorder=3)
        ax.set_xticks(x, [f"{_line_label(m, v)} (n={len(g)})" for m, v, g in bars], rotation=30, ha="right",
                      fontsize=7)

    return _panels(layout, draw, "final normalised score",
                   "Final weights: mean over seeds (bar), std (line), each seed (dot)", "final_scores", line_plot=False)


def _claims_figure(claims: list[dict], folder: Path) -> Path:
    """One panel per claim with paired runs: every pair's difference A - B (a dot per pair, a row per
    dataset, coloured by the pairs' learning rates where they differ), the mean, its 95% interval and
    the lines the verdict rule reads (0, and -MARGIN for an "A >= B" claim)."""
    shown = [c for c in claims if c["evidence"].get("differences")]
    ncols = min(2, len(shown))
    fig, axes = _figure(math.ceil(len(shown) / ncols), ncols, width=5.6, height=3.6)
    for ax, claim in zip(axes, shown):
        evidence = claim["evidence"]
        datasets = sorted({d["dataset"] for d in evidence["differences"]})
        groups = sorted({d.get("group", "") for d in evidence["differences"]})
        low, high = evidence["ci95"]
        ax.axvspan(low, high, color="0.85", label="95% interval of the mean")
        ax.axvline(evidence["mean_difference"], color="black", linewidth=1.2, label="mean")
        ax.axvline(0.0, color="black", linewidth=0.6, linestyle=":")
        if "margin" in evidence["test"]:
            ax.axvline(-MARGIN, color="C3", linewidth=0.8, linestyle="--", label=f"margin -{MARGIN:g}")
        for row, dataset in enumerate(datasets):
            pairs = [d for d in evidence["differences"] if d["dataset"] == dataset]
            for k, pair in enumerate(pairs):  # spread a dataset's pairs over its row
                offset = (k - (len(pairs) - 1) / 2) * 0.5 / len(pairs)
                ax.scatter(pair["difference"], row + offset, s=16, zorder=3,
                           color=f"C{groups.index(pair.get('group', ''))}")
        for group in (g for g in groups if g):  # legend entries for the colours
            ax.scatter([], [], s=16, color=f"C{groups.index(group)}", label=group)
        ax.set_yticks(range(len(datasets)), datasets, fontsize=7)
        ax.set_ylim(-0.6, len(datasets) - 0.4)
        ax.set_xlabel(f"A - B, {evidence.get('unit', 'final normalised score')}")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=6, loc="best")
        ax.set_title(f"{textwrap.fill(claim['claim'], 60)}\n{claim['verdict']} "
                     f"(A = {evidence['a']}, B = {evidence['b']})", fontsize=7)
    for ax in axes[len(shown):]:
        ax.set_visible(False)
    fig.suptitle("Claims: paired differences A - B (a dot per pair), their mean and 95% bootstrap interval")
    path = folder / "claims.png"
    fig.savefig(path, dpi=110)
    return path
