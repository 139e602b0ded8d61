"""`dema report`: tables, aggregates, figures and the paper's claims with verdicts, from run records.

    dema report                                  # results/ -> Markdown on stdout, no files written
    dema report results runs/x --out docs/REPORT.md   # Markdown file, figures in docs/REPORT_figures/
    dema report --figures figs                   # Markdown on stdout, figures in figs/
    dema report --json                           # {"runs", "aggregates", "claims", "problems"} on stdout
    dema report --section cpu-atari --page docs/RESULTS.md   # one protocol's scores into a page's section
    dema report --pong-diagnostics               # docs/RESULTS.md's Pong table from results/diagnostics/pong/

PATHS are record files (`results/<grid>/<run>.json`), folders of them (searched recursively) and run
directories (with eval.json; each is read as one run, its own files and subfolders never as records).
Any file that is not a sound record (unreadable, not UTF-8, not JSON, foreign JSON, fields of the
wrong type or contradicting each other) is named under "problems", left out, and the rest are
reported; no record at all is an error (exit 2). Figures are written only with --out (next to it) or --figures.
Progress goes to stderr.

--section PROTOCOL is one part of the report: per dataset and model (and variant) of the runs under
PROTOCOL, the seeds, every seed's final score, their mean ± std, the best checkpoint's, and the
training data's episode returns on the same scale (dema.experiments.report.section). With --page it
replaces the lines between `<!-- results_section PROTOCOL -->` and `<!-- end results_section -->`
of that page, whose other text stays as it is; without the markers (or without --page) it is printed.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from dema.cli_options import command_parser
from dema.errors import DemaError
from dema.experiments.report import build_report, markdown, write_figures
from dema.files import write_between_markers


def main(argv: list[str]) -> int:
    from dema.run.config import available_protocols

    parser = command_parser("dema report", __doc__.split("\n")[0], epilog="\n".join(__doc__.split("\n")[1:]))
    parser.add_argument("paths", nargs="*", metavar="PATHS", default=["results"],
                        help="record files, folders of records, run directories (default: results)")
    parser.add_argument("--json", action="flag",
                        help='print {"runs", "aggregates", "claims", "problems"} as JSON instead of Markdown')
    parser.add_argument("--out", metavar="FILE", help="write the Markdown report here (else it goes to stdout)")
    parser.add_argument("--figures", metavar="DIR",
                        help="folder of the PNG figures (default: <out stem>_figures next to --out; without --out, "
                             "none are written)")
    parser.add_argument("--section", metavar="PROTOCOL",
                        help="only the scores of the runs under PROTOCOL, beside the data's returns (a page's section); "
                             f"protocols: {', '.join(available_protocols())}")
    parser.add_argument("--page", metavar="FILE",
                        help="with --section: write it between the page's results_section markers (else printed)")
    parser.add_argument("--pong-diagnostics", action="flag",
                        help="docs/RESULTS.md's Pong table from the records in PATHS/diagnostics/pong/ "
                             "(scripts/pong_diagnostics.sh makes them)")
    args = parser.parse_args(argv)
    if args.page and not args.section:
        parser.error("--page goes with --section PROTOCOL (the page's section to write)")
    if (args.section or args.pong_diagnostics) and (args.json or args.out or args.figures):
        parser.error("--section and --pong-diagnostics print one table; drop --json, --out and --figures")
    if args.section and args.pong_diagnostics:
        parser.error("give --section or --pong-diagnostics, not both")
    if args.pong_diagnostics:
        return _pong_diagnostics(args.paths)

    log = lambda message: print(f"dema report: {message}", file=sys.stderr, flush=True)
    if args.section:
        return _section(args.section, args.page, args.paths, log)
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


def _section(protocol: str, page: str | None, paths: list[str], log) -> int:
    from dema.experiments.report.section import END, begin, section_table

    report = build_report(paths, log)
    runs = [r for r in report.runs if r.protocol == protocol]
    if not runs:
        protocols = sorted({r.protocol for r in report.runs})
        raise DemaError(f"no run records under protocol {protocol!r} in {', '.join(paths)}; give one of "
                        f"{', '.join(protocols) or 'none (no records)'}")
    body = section_table(runs, report.datasets)
    if page is None or not write_between_markers(page, begin(protocol), END, body):
        print("\n".join(body))
        return 0
    print(f"wrote {len(runs)} runs of {protocol} into {page}")
    return 0


def _pong_diagnostics(paths: list[str]) -> int:
    from dema.experiments.report.diagnostics import pong_table

    if len(paths) != 1:
        raise DemaError(f"--pong-diagnostics reads one results folder, got {len(paths)}: {' '.join(paths)}")
    print("\n".join(pong_table(Path(paths[0]))))
    return 0
