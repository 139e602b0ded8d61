"""`dema report`: tables, aggregates, figures and the paper's claims with verdicts, from run records.

    dema report                                  # results/ -> Markdown on stdout, no files written
    dema report results runs/x --out docs/REPORT.md   # Markdown file, figures in docs/REPORT_figures/
    dema report --figures figs                   # Markdown on stdout, figures in figs/
    dema report --json                           # {"runs", "aggregates", "claims", "problems"} on stdout

PATHS are record files (`results/<grid>/<run>.json`), folders of them (searched recursively) and run
directories (with eval.json; each is read as one run, its own files and subfolders never as records).
Any file that is not a sound record (unreadable, not UTF-8, not JSON, foreign JSON, fields of the
wrong type or contradicting each other) is named under "problems", left out, and the rest are
reported; no record at all is an error (exit 2). Figures are written only with --out (next to it) or --figures.
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from dema.experiments.report import build_report, markdown, write_figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dema report", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[1:]))
    parser.add_argument("paths", nargs="*", metavar="PATHS", default=["results"],
                        help="record files, folders of records, run directories (default: results)")
    parser.add_argument("--json", action="store_true",
                        help='print {"runs", "aggregates", "claims", "problems"} as JSON instead of Markdown')
    parser.add_argument("--out", metavar="FILE", help="write the Markdown report here (else it goes to stdout)")
    parser.add_argument("--figures", metavar="DIR",
                        help="folder of the PNG figures (default: <out stem>_figures next to --out; without --out, "
                             "none are written)")
    args = parser.parse_args(argv)

    log = lambda message: print(f"dema report: {message}", file=sys.stderr, flush=True)
    report = build_report(args.paths, log)
    out = Path(args.out) if args.out else None
    figures_dir = Path(args.figures) if args.figures else out.parent / f"{out.stem}_figures" if out else None
    figures = []
    if figures_dir is not None:
        log(f"drawing the figures into {figures_dir}/")
        figures = write_figures(report.runs, figures_dir, report.claims)
    command = shlex.join(["dema", "report", *argv])
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(markdown(report, command, figures, out.parent))
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    elif out is None:
        sys.stdout.write(markdown(report, command, figures, Path.cwd()))
    else:
        print(f"wrote {out} ({len(report.runs)} runs, {len(report.problems)} problems; "
              f"figures in {figures_dir})")
        print(f"next: open {out} (it starts with the claims' verdicts); `dema sweep GRID` adds runs, "
              "and this same command brings the page up to date")
    return 0
