"""`dema continue`: finished runs trained on past their last update, compared side by side with the originals.

    dema continue SOURCE_RUNS_DIR RUN [RUN ...] --updates 10000 --into runs/continued \\
        [--records results/continued] [--page docs/RESULTS.md] [--figure docs/RESULTS_figures/continued.png]
    dema continue --from-records results/continued --page docs/RESULTS.md \\
        --figure docs/RESULTS_figures/continued.png      # the table and figure again, from a clean clone

Each RUN (the name of a finished run directory under SOURCE_RUNS_DIR) is copied once into --into
and resumed there to --updates (exact under a constant learning rate; a decaying one is refused).
The original directory and its record stay as they are; rerunning resumes unfinished continuations
and skips finished ones. The table (dema.experiments.continuation) is written between
`<!-- continue_runs -->` and `<!-- end continue_runs -->` in --page (else printed), after every
finished continuation; the learning curves go to --figure. With --records, each compared run is
also kept as a JSON record, which --from-records reads back without the run directories
(scripts/continued_runs.sh makes them).
"""

from __future__ import annotations

from pathlib import Path

from dema.cli_options import command_parser
from dema.errors import ConfigError


def main(argv: list[str]) -> int:
    parser = command_parser("dema continue", __doc__.split("\n")[0], epilog="\n".join(__doc__.split("\n")[1:]))
    parser.add_argument("source", type=Path, nargs="?", help="the folder of the finished run directories")
    parser.add_argument("runs", nargs="*", help="run directory names under SOURCE")
    parser.add_argument("--updates", type=int, help="train each run on to this many updates")
    parser.add_argument("--into", type=Path, help="folder of the continued copies")
    parser.add_argument("--records", type=Path, help="also write each compared run as a JSON record here")
    parser.add_argument("--from-records", type=Path, help="publish the records of this folder; train nothing")
    parser.add_argument("--page", type=Path, help="markdown page with the markers; else the table is printed")
    parser.add_argument("--figure", type=Path, help="PNG of the continued learning curves")
    args = parser.parse_args(argv)
    from dema.experiments.continuation import compare, continue_run, prepare, publish, read_records, write_record

    if args.from_records:
        publish(read_records(args.from_records), args.page, args.figure)
        return 0
    if not (args.source and args.runs and args.updates and args.into):
        raise ConfigError("give SOURCE RUN [RUN ...] --updates N --into DIR, or --from-records DIR")
    args.into.mkdir(parents=True, exist_ok=True)
    copies = [prepare(args.source / name, args.into, args.updates) for name in args.runs]
    rows = []
    for name, copy in zip(args.runs, copies):  # the page grows with every finished continuation
        continue_run(copy, args.updates)
        rows.append(compare(args.source / name, copy))
        if args.records:
            write_record(rows[-1], args.records)
        publish(rows, args.page, args.figure)
    return 0
