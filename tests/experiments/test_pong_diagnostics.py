"""scripts/pong_diagnostics.py: the table comes from the evaluation records alone."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pong_diagnostics.py"


def _script():
    spec = importlib.util.spec_from_file_location("pong_diagnostics", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_reads_each_target_of_the_records(tmp_path):
    folder = tmp_path / "diagnostics" / "pong"
    folder.mkdir(parents=True)
    per_target = [{"target": t, "return_mean": m, "return_std": 0.5} for t, m in ((20.0, -21.0), (0.0, -20.4), (-10.0, -19.8))]
    (folder / "Pong_dt_cpu-atari_s0.json").write_text(json.dumps({"per_target": per_target}))
    lines = _script().table(tmp_path)
    assert lines[2] == "| dema | not yet run | not yet run | not yet run |"
    assert lines[3] == "| dt | -21.0 ± 0.5 | -20.4 ± 0.5 | -19.8 ± 0.5 |"
