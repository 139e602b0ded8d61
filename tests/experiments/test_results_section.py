"""`dema report --section PROTOCOL --page PAGE`: a protocol's scores generated between markers of a markdown page."""

import pytest

from dema.cli import main as dema
from dema.experiments.report import build_report
from dema.experiments.report.section import section_table
from test_report import record, write  # pytest puts this folder on sys.path (no __init__.py)

PAGE = "# Results\n\nbefore\n<!-- results_section cpu-test -->\nold table\n<!-- end results_section -->\nafter\n"


@pytest.fixture
def results(tmp_path):
    return write(tmp_path / "results", [record("hopper-medium", model, seed, score)
                                        for model, seed, score in [("dema", 0, 50.0), ("dema", 1, 60.0),
                                                                   ("dt", 0, 40.0)]])


def test_table_replaces_the_marked_block_and_keeps_the_page(results, tmp_path, capsys):
    page = tmp_path / "RESULTS.md"
    page.write_text(PAGE)
    assert dema(["report", str(results), "--section", "cpu-test", "--page", str(page)]) == 0
    assert capsys.readouterr().out == f"wrote 3 runs of cpu-test into {page}\n"
    text = page.read_text()
    assert text.startswith("# Results\n\nbefore\n") and text.endswith("<!-- end results_section -->\nafter\n")
    assert "old table" not in text
    assert "| hopper-medium | DeMa | 0, 1 | 50.0 / 60.0 | 55.0 ± 7.1 |" in text
    assert "| hopper-medium | DT | 0 | 40.0 | 40.0 |" in text
    # exactly the table, nothing else, between the markers
    report = build_report([results])
    body = "\n".join(section_table(report.runs, report.datasets))
    assert text == PAGE.replace("old table", body)


def test_without_a_page_or_its_markers_the_table_is_printed(results, tmp_path, capsys):
    assert dema(["report", str(results), "--section", "cpu-test"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| dataset | model | seeds |") and "| hopper-medium | DT | 0 | 40.0 | 40.0 |" in printed
    bare = tmp_path / "BARE.md"
    bare.write_text("no markers here\n")
    assert dema(["report", str(results), "--section", "cpu-test", "--page", str(bare)]) == 0
    assert capsys.readouterr().out == printed
    assert bare.read_text() == "no markers here\n"


def test_unknown_protocol_is_an_error_and_the_page_is_untouched(tmp_path, capsys):
    results = write(tmp_path / "results", [record("hopper-medium", "dema", 0, 50.0)])
    page = tmp_path / "RESULTS.md"
    page.write_text("<!-- results_section cpu-atari -->\n<!-- end results_section -->\n")
    assert dema(["report", str(results), "--section", "cpu-atari", "--page", str(page)]) == 2
    err = capsys.readouterr().err
    assert "no run records under protocol 'cpu-atari'" in err and "give one of cpu-test" in err
    assert page.read_text() == "<!-- results_section cpu-atari -->\n<!-- end results_section -->\n"


@pytest.mark.parametrize("extra", [["--json"], ["--out", "x.md"], ["--figures", "figs"]])
def test_a_section_is_one_table_not_a_report(results, tmp_path, extra, capsys):
    with pytest.raises(SystemExit) as stop:
        dema(["report", str(results), "--section", "cpu-test", *extra])
    assert stop.value.code == 2 and "drop --json, --out and --figures" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        dema(["report", str(results), "--page", str(tmp_path / "P.md")])
    assert "--page goes with --section" in capsys.readouterr().err
