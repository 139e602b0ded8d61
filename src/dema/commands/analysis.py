"""`dema analysis tables PATH [PATH ...]`: the Markdown tables of docs/ANALYSES.md, from the JSON
`dema surgery` and `dema decay` wrote (nothing is computed again).

    dema analysis tables results/analyses/<cell> [...]   # the records (scripts/analysis_runs.sh)
    dema analysis tables RUN_DIR [RUN_DIR ...]            # a run directory's own outputs

Per folder: the surgery table and the decay tables of the window and the episode views, each where
its JSON exists (dema.analysis.tables says where it looks).
"""

from __future__ import annotations

import sys
from pathlib import Path

from dema.cli_options import command_parser
from dema.errors import ConfigError


def main(argv: list[str]) -> int:
    parser = command_parser("dema analysis", __doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("tables", help="the tables of docs/ANALYSES.md from surgery.json and decay.json")
    p.add_argument("folders", nargs="+", type=Path, metavar="PATH",
                   help="a record folder (results/analyses/<cell>) or a run directory")
    args = parser.parse_args(argv)
    from dema.analysis.tables import folder_tables

    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        raise ConfigError(f"not a folder: {', '.join(missing)}; give record folders (results/analyses/<cell>) or "
                          "run directories")
    for folder in args.folders:
        sys.stdout.write(folder_tables(folder))
    return 0
