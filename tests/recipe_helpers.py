"""Following a recipe of CONTRIBUTING.md in a test: a copy of the package to edit as the recipe says.

The recipes' tests (tests/*/test_recipe_*.py) copy src/dema, make exactly the edits a recipe lists
and run the copy in a fresh process, so the recipe stays true to the code: if one needs a further
edit to pass, CONTRIBUTING.md (and the test) must say so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dema


def copy_package(tmp_path: Path) -> Path:
    """A copy of the dema package under tmp_path/src (no caches); returns its folder."""
    package = tmp_path / "src" / "dema"
    shutil.copytree(Path(dema.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__", "*.nb[ic]"))
    return package


def insert_at(path: Path, anchor: str, text: str, before: bool = True) -> None:
    """Insert `text` before (or after) the line holding `anchor`, which must occur once."""
    source = path.read_text()
    assert source.count(anchor) == 1, f"{path.name}: the recipe's anchor {anchor!r} moved; update CONTRIBUTING.md"
    start = source.index(anchor)
    at = source.rindex("\n", 0, start) + 1 if before else source.index("\n", start) + 1
    path.write_text(source[:at] + text + source[at:])


def run_copy(package: Path, *args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python ARGS` in a fresh process that imports dema from the copy."""
    env = {**os.environ, "PYTHONPATH": str(package.parent), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
