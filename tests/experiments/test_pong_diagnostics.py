"""`dema report --pong-diagnostics`: the table comes from the evaluation records alone."""

import json

from dema.cli import main as dema
from dema.experiments.report.diagnostics import pong_record, pong_table


def test_the_table_reads_each_target_of_the_records(tmp_path, capsys):
    path = pong_record(tmp_path, "dt")
    path.parent.mkdir(parents=True)
    per_target = [{"target": t, "return_mean": m, "return_std": 0.5} for t, m in ((20.0, -21.0), (0.0, -20.4), (-10.0, -19.8))]
    path.write_text(json.dumps({"per_target": per_target}))
    assert path == tmp_path / "diagnostics" / "pong" / "Pong_dt_cpu-atari_s0.json"  # where the script copies them
    lines = pong_table(tmp_path)
    assert lines == ["| model | target 20 | target 0 | target -10 |",
                     "| --- | --- | --- | --- |",
                     "| dema | not yet run | not yet run | not yet run |",
                     "| dt | -21.0 ± 0.5 | -20.4 ± 0.5 | -19.8 ± 0.5 |"]
    assert dema(["report", str(tmp_path), "--pong-diagnostics"]) == 0
    assert capsys.readouterr().out == "\n".join(lines) + "\n"


def test_a_damaged_record_is_one_line_naming_it(tmp_path, capsys):
    path = pong_record(tmp_path, "dema")
    path.parent.mkdir(parents=True)
    path.write_text("{")
    assert dema(["report", str(tmp_path), "--pong-diagnostics"]) == 2
    err = capsys.readouterr().err
    assert "Pong_dema_cpu-atari_s0.json: not an evaluation record" in err and len(err.strip().splitlines()) == 1
