"""One protocol's scores beside the datasets' own returns: a section of a page (`dema report --section`).

Per dataset and model (and variant), the seeds, every seed's final score, their mean ± std, the
best checkpoint's, and the training data's episode returns on the same normalised scale: the
report's own groups (`runs.group_runs`, `runs.summaries`), of the runs of one protocol. Written
between the lines `<!-- results_section PROTOCOL -->` and `<!-- end results_section -->` of a page,
whose other text stays as it is; so docs/RESULTS.md carries the Atari scores without a number
typed by hand.
"""

from __future__ import annotations

from dema.experiments.report.runs import Run, group_runs, summaries, variant_text
from dema.models.registry import label

END = "<!-- end results_section -->"


def begin(protocol: str) -> str:
    """The line after which a page holds `protocol`'s section."""
    return f"<!-- results_section {protocol} -->"


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.1f}" + ("" if std is None else f" ± {std:.1f}")


def section_table(runs: list[Run], datasets: list[dict]) -> list[str]:
    """One row per (dataset, model, variant) of `runs`; `datasets` are the report's dataset rows."""
    data = {row["dataset"]: row["returns"] for row in datasets}
    lines = ["| dataset | model | seeds | final, per seed | final, mean ± std over seeds | best checkpoint, mean | "
             "the data's episodes: mean ± std (max) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for group, g in zip(group_runs(runs).values(), summaries(runs)):  # summaries() walks group_runs() in order
        returns = data.get(g["dataset"])
        data_text = "not recorded" if returns is None else (
            f"{_pm(returns['normalized_return_mean'], returns['normalized_return_std'])} "
            f"({returns['normalized_return_max']:.1f})")
        name = label(g["model"]) + (f" ({variant_text(g['variant'])})" if g["variant"] else "")
        lines.append(f"| {g['dataset']} | {name} | {', '.join(map(str, g['seeds']))} | "
                     f"{' / '.join(f'{r.final:.1f}' for r in group)} | {_pm(g['final_mean'], g['final_std'])} | "
                     f"{_pm(g['best_checkpoint_mean'], None)} | {data_text} |")
    return lines
