"""`dema bench` end to end on tiny sizes: it runs, prints what it promises, and rejects bad input."""

from __future__ import annotations

import json

import pytest
import torch

from dema.bench.cli import main
from dema.bench.tables import cost_tables, render_folder
from dema.cli import main as dema_main
from dema.errors import ConfigError


def test_bench_scan_json_on_a_tiny_shape(capsys):
    assert main(["scan", "--json", "--shape", "2,3,5,4", "--budget", "0.2"]) == 0
    result = json.loads(capsys.readouterr().out)
    variants = {row["variant"] for row in result["rows"]}
    assert {"torch", "reference"} <= variants
    assert result["elements"] == 2 * 3 * 5 * 4
    assert result["count"]["fwd_exp"] == result["elements"]
    assert all(row["fwd_bwd_ms"] > 0 for row in result["rows"])
    assert result["torch_threads"] == 1 and result["cores"] >= 1
    # each variant on each form of B and C (mambapy's adapter: input-dependent only)
    forms = {(row["variant"], row["form"]) for row in result["rows"]}
    assert {("torch", f) for f in ("input-dependent", "time-invariant", "grouped")} <= forms
    assert {("reference", f) for f in ("input-dependent", "time-invariant", "grouped")} <= forms


def test_bench_scan_forms_and_groups_are_checked(capsys):
    assert main(["scan", "--json", "--shape", "2,4,5,3", "--budget", "0.1", "--variants", "fused",
                 "--forms", "grouped", "--groups", "2"]) == 0  # fused: the torch node's old name
    result = json.loads(capsys.readouterr().out)
    assert [(row["variant"], row["form"]) for row in result["rows"]] == [("torch", "grouped")]
    assert result["shape"]["groups"] == 2
    with pytest.raises(ConfigError, match="--groups 3 must divide d_inner 4"):
        main(["scan", "--shape", "2,4,5,3", "--budget", "0.1", "--groups", "3"])
    with pytest.raises(ConfigError, match="--forms: diagonal is not a form"):
        main(["scan", "--shape", "2,4,5,3", "--budget", "0.1", "--forms", "diagonal"])


def test_bench_scan_table_on_a_tiny_shape(capsys):
    """The table (dema.bench.tables) of a shape so small that its floor rounds to 0 ms."""
    assert main(["scan", "--shape", "2,3,5,4", "--budget", "0.1", "--variants", "reference"]) == 0
    out = capsys.readouterr().out
    assert "| variant | B and C | forward wall ms |" in out and "| reference | time-invariant |" in out


def test_bench_act_table(capsys):
    assert main(["act", "--budget", "0.5"]) == 0
    out = capsys.readouterr().out
    # dema.bench.tables: the paths `dema eval` takes (fused on the CPU), their PyTorch references beside
    assert "| RNN-like DeMa, one `step` (fused, what `dema eval` runs) |" in out and "| DT, K 20 window |" in out
    assert "| Transformer-like DeMa, K 20 window (fused, what `dema eval` runs) |" in out
    assert "window, `predict_last` |" in out
    assert "| RNN-like DeMa, one step exported (`dema export`), ONNX Runtime |" in out
    assert "| DT, K 20 window exported, ONNX Runtime |" in out and "Exported RNN step: **" in out


def test_bench_act_json_times_what_dema_eval_runs(capsys):
    assert main(["act", "--budget", "0.5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rnn_step_path"] == result["dema_window_path"] == "fused"
    ms = result["ms"]
    assert result["dema_window_over_dt_window"] == round(ms["dema_window"] / ms["dt_window"], 3)
    assert result["dema_torch_window_over_dt_window"] == round(ms["dema_window_torch"] / ms["dt_window"], 3)
    # issue 27: the exported decisions through ONNX Runtime beside them
    assert {"dema-rnn_step_onnx", "dema_window_onnx", "dt_window_onnx"} <= set(ms)
    assert result["onnx_rnn_step_over_rnn_step"] == round(ms["dema-rnn_step_onnx"] / ms["dema-rnn_step"], 3)
    assert result["onnx_exported"]["dema-rnn"]["nodes"] > 0


def test_bench_act_without_onnx_runtime_says_so(capsys, monkeypatch):
    import dema.bench.act as act

    monkeypatch.setattr(act, "_onnx_missing", lambda: "onnxruntime is not installed (pip install -e \".[export]\")")
    assert main(["act", "--budget", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "ONNX Runtime |" not in out
    assert "Exported decisions not timed: onnxruntime is not installed" in out


def test_bench_cost_writes_json_and_plots(tmp_path, monkeypatch, capsys):
    import dema.bench.cost as cost

    monkeypatch.setattr(cost, "PRESET_DATASETS", ("hopper-medium",))  # keep the test short
    monkeypatch.setattr(cost, "PRESET_MODELS", ("dema", "dt"))
    monkeypatch.setattr(cost, "TABLE_SETTINGS", {"mujoco": {"batch": 2, "rnn_batch": 1, "rnn_steps": 4}})
    assert main(["cost", "--json", "--lengths", "2,3", "--batch", "2", "--budget", "0.2", "--out", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (tmp_path / "cost.json").exists()
    assert "| dema-rnn |" in render_folder(tmp_path)
    assert main(["tables", str(tmp_path)]) == 0  # the tables of docs/PERFORMANCE.md from the files
    assert capsys.readouterr().out == render_folder(tmp_path) + "\n"
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["cost_forward_cpu_ms.png", "cost_train_peak_mb.png",
                                                             "cost_train_step_cpu_ms.png"]
    models = {(row["model"], row["steps"]) for row in result["curves"]}
    assert models == {(m, s) for m in ("dema-rnn", "dema", "dt", "dc") for s in (2, 3)}
    dema, dt = ({r["model"]: r for r in result["presets"]}[m] for m in ("dema", "dt"))
    assert dema["parameters"] < dt["parameters"] and dema["macs"] < dt["macs"]


def test_bench_tables_render_every_file_the_benchmarks_wrote(tmp_path, capsys):
    assert main(["scan", "--shape", "2,3,5,4", "--budget", "0.1", "--variants", "reference", "--out", str(tmp_path)]) == 0
    printed_by_scan = capsys.readouterr().out
    (tmp_path / "notes.json").write_text("{}")  # not a benchmark's file: left out
    assert main(["tables", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"### scan\n\n{printed_by_scan}\n"  # the table `dema bench scan` printed
    assert dema_main(["bench", "tables", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_bench_profile_groups_a_training_step():
    from dema.bench.profile import group, profile_line, profile_step

    assert [group(n) for n in ("NumbaScanBackward", "_SSMNodeBackward", "aten::addmm", "aten::convolution",
                               "Optimizer.step#AdamW.step", "aten::add")] == \
        ["scan", "scan+conv", "matmul", "conv", "adamw", "other"]
    totals = profile_step("dt", "hopper-medium", batch=2)
    assert {"matmul", "adamw", "other"} <= set(totals) and all(v >= 0 for v in totals.values())
    assert profile_line("dt", {"matmul": 30.0, "other": 10.0}) == \
        "dt: 40 ms profiled self CPU per step: matmul 30 ms (75%), other 10 ms (25%)"


def test_bench_collect_measures_each_mode_and_count(capsys):
    assert main(["collect", "--steps", "30", "--num-envs", "1", "2", "--modes", "sync"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Hopper-v5, ") and "30 steps per row" in lines[0]
    assert lines[1:3] == ["| vector mode | num envs | steps/s |", "| --- | --- | --- |"]
    assert [line.split(" | ")[:2] for line in lines[3:5]] == [["| sync", "1"], ["| sync", "2"]]
    assert lines[5].startswith("load average after: ")
    with pytest.raises(ConfigError, match="--num-envs must be at least 1"):
        main(["collect", "--num-envs", "0"])


def test_bench_throughput_counts_each_process_and_writes_as_it_goes(tmp_path, capsys):
    assert main(["throughput", "--models", "dt", "--processes", "2", "--seconds", "0.3", "--json",
                 "--out", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = result["rows"]
    assert [(r["model"], r["processes"], len(r["updates_per_s_each"])) for r in rows] == [("dt", 2, 2)]
    assert rows[0]["updates_per_s_total"] == pytest.approx(sum(rows[0]["updates_per_s_each"]), abs=0.11)
    assert min(rows[0]["updates_per_s_each"]) > 0
    assert rows[0]["preset"] == "hopper-medium, K 20" and result["device"] == "cpu" and result["cores"] >= 1
    assert json.loads((tmp_path / "throughput.json").read_text())["rows"] == rows
    with pytest.raises(ConfigError, match="--models 'gpt'"):
        main(["throughput", "--models", "gpt"])
    with pytest.raises(ConfigError, match="--processes"):
        main(["throughput", "--processes", "0"])


def test_bench_scan_gpu_times_every_path_and_the_tile_settings(tmp_path, monkeypatch, capsys):
    """On the CPU under Triton's interpreter (no GPU here): the rows, the settings passed, the file."""
    from dema.scan import gpu_scan_available

    if not gpu_scan_available():
        pytest.skip('triton is not installed: pip install -e ".[gpu]"')
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device here"):
            main(["scan-gpu"])
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert main(["scan-gpu", "--shapes", "1,2,5,3", "--reps", "1", "--no-sweep", "--json", "--out", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = result["rows"]
    assert [r["variant"] for r in rows][:3] == ["gpu", "torch", "ref"] and all("error" not in r for r in rows)
    assert all(r["shape"] == [1, 2, 5, 3] and r["fwd_ms"] > 0 and r["fwd_bwd_ms"] > 0 for r in rows)
    assert (rows[0]["tile"], rows[0]["chunk"], rows[0]["warps"]) == (4096, 32, 8)
    assert json.loads((tmp_path / "scan_gpu.json").read_text())["rows"] == rows

    from dema.bench.scan_gpu import run_scan_gpu

    device = "cuda" if torch.cuda.is_available() else "cpu"
    swept = run_scan_gpu([(1, 2, 40, 3), (1, 2, 200, 3)], tile_sweep=[(4096, 16, 4)], reps=1, device=device)["rows"]
    gpu = [(r["shape"], r["chunk"], r["warps"], r["blocks"][2]) for r in swept if r["variant"] == "gpu"]
    # the sweep at the first shape only, each setting's chunk length in the blocks the kernel got
    assert gpu == [((1, 2, 40, 3), 32, 8, 32), ((1, 2, 40, 3), 16, 4, 16), ((1, 2, 200, 3), 32, 8, 32)]
    assert "ref" not in [r["variant"] for r in swept if r["shape"][2] > 100]  # the reference up to 100 steps


def test_bench_rejects_bad_arguments(capsys):
    with pytest.raises(ConfigError, match="--shape"):
        main(["scan", "--shape", "2,3,5"])
    with pytest.raises(ConfigError, match="--lengths"):
        main(["cost", "--lengths", "ten"])
    assert dema_main(["bench", "scan", "--shape", "0,1,1,1"]) == 2  # one-line error, exit code 2
    assert "positive integers" in capsys.readouterr().err


def test_bench_cost_preset_table_counts_the_scan_and_times_training(monkeypatch, capsys):
    """Table 7 alone: every model of a preset with counted MACs and a timed training step."""
    import dema.bench.cost as cost

    monkeypatch.setattr(cost, "PRESET_DATASETS", ("hopper-medium",))
    monkeypatch.setattr(cost, "PRESET_MODELS", ("dema", "dema-rnn", "dt", "dc"))
    monkeypatch.setattr(cost, "TABLE_SETTINGS", {"mujoco": {"batch": 2, "rnn_batch": 1, "rnn_steps": 4}})
    assert main(["cost", "--json", "--table-only", "--budget", "0.2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["curves"] == [] and result["device"] == "cpu"
    rows = {r["model"]: r for r in result["presets"]}
    assert set(rows) == {"dema", "dema-rnn", "dt", "dc"}
    for row in rows.values():
        assert row["train_step_ms"] > 0 and row["train_step_cpu_ms"] > 0 and row["macs"] > 0
    assert (rows["dema-rnn"]["train_batch"], rows["dema-rnn"]["train_steps"]) == (1, 4)
    assert (rows["dema"]["train_batch"], rows["dema"]["train_steps"]) == (2, 20)
    assert rows["dema-rnn"]["macs_per_decision"] < rows["dema"]["macs_per_decision"] == rows["dema"]["macs"]
    assert rows["dt"]["scan_elementwise_macs"] == 0 < rows["dema"]["scan_elementwise_macs"]
    assert "| hopper-medium | dema-rnn | 20 |" in cost_tables(result)


def test_flop_counter_sees_the_scan_only_through_the_reference():
    """FlopCounterMode misses the Numba kernel; with reference_scans it counts C.h (1 MAC per element).
    (The SSM node also hides its conv from the counter: the plain forward, ssm="ref", is counted
    against here; forward_macs' reference scans turn the node off anyway.)"""
    import os

    from torch.utils.flop_counter import FlopCounterMode

    from dema.bench.cost import forward_macs
    from dema.bench.workloads import build, random_batch
    from dema.scan import compute_paths, current_paths, numba_available

    policy, state_dim, act_dim = build("dema", "hopper-medium", context_len=4)
    environ, paths = dict(os.environ), current_paths()
    counted = forward_macs(policy, state_dim, act_dim, 4)
    assert dict(os.environ) == environ and current_paths() == paths  # scoped, nothing written
    cfg = policy.cfg
    readout = cfg.d_inner * 12 * cfg.d_state * cfg.n_layer  # 4 steps = 12 tokens
    if numba_available():
        counter = FlopCounterMode(display=False)
        with counter, compute_paths(scan="", ssm="ref"):
            policy.eval()(random_batch(1, 4, state_dim, act_dim))
        assert counted - counter.get_total_flops() // 2 == readout
    assert counted > readout


def test_bench_node_times_the_ssm_node_at_each_shape(capsys):
    assert main(["node", "--json", "--shapes", "2x9", "1x5", "--d-inner", "8", "--d-state", "4", "--repeats", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [(row["batch"], row["length"]) for row in result["rows"]] == [(2, 9), (1, 5)]
    assert all(row["backward_ms"] >= row["backward_min_ms"] > 0 and row["forward_ms"] > 0 for row in result["rows"])
    assert (result["d_inner"], result["d_state"], result["torch_threads"]) == (8, 4, 1)
    with pytest.raises(ConfigError, match="--shapes: each is BATCHxSTEPS"):
        main(["node", "--shapes", "8by3000"])
    with pytest.raises(ConfigError, match="--repeats must be at least 1"):
        main(["node", "--shapes", "2x9", "--repeats", "0"])


def test_bench_node_updates_time_rnn_like_training_on_a_dataset(capsys):
    """--updates: grid rnn-like's training update (dema-rnn, batch 8 whole trajectories) on the
    bundled dataset, in a run directory that does not outlive the command."""
    assert main(["node", "--updates", "hopper-medium-replay-small"]) == 0
    out = capsys.readouterr().out
    assert "dema-rnn on hopper-medium-replay-small, batch 8 whole trajectories: ms per update" in out
    assert main(["node", "--json", "--updates", "hopper-medium-replay-small"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["update_ms"]) == 4 and min(result["update_ms"]) > 0
