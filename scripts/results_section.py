"""One protocol's scores beside the datasets' own returns, generated into a markdown page.

    python scripts/results_section.py PROTOCOL PAGE [RESULTS ...]     # default RESULTS: results

Reads the run records (as `dema report` does) of the runs trained under PROTOCOL and writes, in
PAGE, between the lines `<!-- results_section PROTOCOL -->` and `<!-- end results_section -->`:
per dataset and model (and variant), the seeds, every seed's final score, their mean ± std, the best
checkpoint's, and the training data's episode returns on the same normalised scale. The page's
other text is left as it is; without the markers in PAGE, the table is printed instead. So
docs/RESULTS.md carries the Atari scores without a number typed by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dema.experiments.report import LABEL, Run, build_report, group_runs, summaries, variant_text
from dema.files import write_between_markers

END = "<!-- end results_section -->"


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.1f}" + ("" if std is None else f" ± {std:.1f}")


def table(runs: list[Run], datasets: list[dict]) -> list[str]:
    """One row per (dataset, model, variant): the report's own groups and their statistics."""
    data = {row["dataset"]: row["returns"] for row in datasets}
    lines = ["| dataset | model | seeds | final, per seed | final, mean ± std over seeds | best checkpoint, mean | "
             "the data's episodes: mean ± std (max) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for group, g in zip(group_runs(runs).values(), summaries(runs)):  # summaries() walks group_runs() in order
        returns = data.get(g["dataset"])
        data_text = "not recorded" if returns is None else (
            f"{_pm(returns['normalized_return_mean'], returns['normalized_return_std'])} "
            f"({returns['normalized_return_max']:.1f})")
        name = LABEL.get(g["model"], g["model"]) + (f" ({variant_text(g['variant'])})" if g["variant"] else "")
        lines.append(f"| {g['dataset']} | {name} | {', '.join(map(str, g['seeds']))} | "
                     f"{' / '.join(f'{r.final:.1f}' for r in group)} | {_pm(g['final_mean'], g['final_std'])} | "
                     f"{_pm(g['best_checkpoint_mean'], None)} | {data_text} |")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    protocol, page, sources = argv[0], Path(argv[1]), argv[2:] or ["results"]
    report = build_report(sources)
    runs = [r for r in report.runs if r.protocol == protocol]
    if not runs:
        print(f"no run records under protocol {protocol!r} in {', '.join(sources)}", file=sys.stderr)
        return 2
    body = table(runs, report.datasets)
    if not write_between_markers(page, f"<!-- results_section {protocol} -->", END, body):
        print("\n".join(body))
        return 0
    print(f"wrote {len(runs)} runs of {protocol} into {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
