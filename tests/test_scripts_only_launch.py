"""scripts/ only launches things: the code that computes what the docs show is in the package, and
the tests import the package, never a file of scripts/ (issue 28)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# a Python file under scripts/, however the path is spelt: "scripts/x.py", "scripts" / "x.py", ...
_SCRIPT_PY = re.compile(r"""scripts['"]?\s*[/,+]\s*['"]?[\w./-]*\.py\b""")
# ways to run a file's code without importing it from the package; no test needs them
_FILE_LOADERS = re.compile(r"spec_from_file_location|SourceFileLoader|runpy|run_path\(")


def loads_a_script(text: str) -> list[str]:
    """What in a test file's text names a Python file of scripts/ or loads code from a file path."""
    return _SCRIPT_PY.findall(text) + _FILE_LOADERS.findall(text)


def test_the_check_finds_each_way_a_test_loaded_a_script():
    assert loads_a_script('SCRIPT = ROOT / "scripts" / "results_section.py"')
    assert loads_a_script("python scripts/continue_runs.py --from-records x")
    assert loads_a_script("spec = importlib.util.spec_from_file_location('x', SCRIPT)")
    assert loads_a_script("runpy.run_path(str(path))")
    assert not loads_a_script('SCRIPT = ROOT / "scripts" / "collect_bundled.sh"  # read as text')
    assert not loads_a_script("from dema.experiments.report.section import section_table")


def test_no_test_loads_a_file_of_scripts():
    offenders = {str(path.relative_to(ROOT)): found for path in sorted((ROOT / "tests").rglob("*.py"))
                 if path.resolve() != Path(__file__).resolve() and (found := loads_a_script(path.read_text()))}
    assert offenders == {}, "tests import the package (dema...), never scripts/"


def test_scripts_are_launchers_only():
    if not (ROOT / "scripts").is_dir():
        pytest.skip("no scripts/ beside the tests (an installed copy)")
    code = sorted(p.name for p in (ROOT / "scripts").iterdir() if p.suffix != ".sh")
    assert code == [], "scripts/ holds shell launchers; what they compute belongs in a `dema` command"
