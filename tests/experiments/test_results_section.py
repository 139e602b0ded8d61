"""scripts/results_section.py: a protocol's scores generated between markers of a markdown page."""

import importlib.util
from pathlib import Path

from test_report import record, write  # pytest puts this folder on sys.path (no __init__.py)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "results_section.py"


def _script():
    spec = importlib.util.spec_from_file_location("results_section", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_replaces_the_marked_block_and_keeps_the_page(tmp_path, capsys):
    results = write(tmp_path / "results", [record("hopper-medium", model, seed, score)
                                           for model, seed, score in [("dema", 0, 50.0), ("dema", 1, 60.0),
                                                                      ("dt", 0, 40.0)]])
    page = tmp_path / "RESULTS.md"
    page.write_text("# Results\n\nbefore\n<!-- results_section cpu-test -->\nold table\n"
                    "<!-- end results_section -->\nafter\n")
    assert _script().main(["cpu-test", str(page), str(results)]) == 0
    text = page.read_text()
    assert text.startswith("# Results\n\nbefore\n") and text.endswith("<!-- end results_section -->\nafter\n")
    assert "old table" not in text
    assert "| hopper-medium | DeMa | 0, 1 | 50.0 / 60.0 | 55.0 ± 7.1 |" in text
    assert "| hopper-medium | DT | 0 | 40.0 | 40.0 |" in text


def test_unknown_protocol_is_an_error_and_the_page_is_untouched(tmp_path, capsys):
    results = write(tmp_path / "results", [record("hopper-medium", "dema", 0, 50.0)])
    page = tmp_path / "RESULTS.md"
    page.write_text("<!-- results_section cpu-atari -->\n<!-- end results_section -->\n")
    assert _script().main(["cpu-atari", str(page), str(results)]) == 2
    assert "no run records under protocol 'cpu-atari'" in capsys.readouterr().err
    assert page.read_text() == "<!-- results_section cpu-atari -->\n<!-- end results_section -->\n"
