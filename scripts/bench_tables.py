"""Markdown tables for docs/PERFORMANCE.md from the JSON files `dema bench ... --out bench_out` wrote.

    python scripts/bench_tables.py [bench_out]      # prints the tables; paste them into the doc

The tables are those `dema bench` prints (dema.bench.tables, the one renderer), generated from
measured outputs only; nothing here is typed in by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dema.bench.tables import render_folder  # noqa: E402


def main(argv: list[str]) -> int:
    text = render_folder(Path(argv[0]) if argv else Path("bench_out"))
    if text:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
