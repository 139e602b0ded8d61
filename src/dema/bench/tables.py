"""The one renderer of the benchmark results: markdown tables from the JSON `dema bench` produces.

`dema bench scan|step|act|cost` prints these tables (or the JSON with --json), and
`dema bench tables bench_out` prints them from the files `--out` wrote, for docs/PERFORMANCE.md.
Tables are generated from measured outputs only; nothing here is typed in by hand.
"""

from __future__ import annotations

import json
from pathlib import Path


def _machine(r: dict) -> str:
    return (f"{r['cpu']}, {r['cores']} cores, torch {r['torch']}, numba {r.get('numba')}, "
            f"{r['torch_threads']} torch thread(s), 1-min load {r['load_1min']}"
            + (f", GPU {r['cuda_device']}" if r.get("cuda_device") else ""))


def scan_table(r: dict) -> str:
    s, f = r["shape"], r["floor_ms"]
    lines = [f"Shape B={s['batch']}, Di={s['d_inner']}, L={s['length']}, N={s['d_state']} "
             f"({r['elements'] / 1e6:.1f}M elements); {_machine(r)}.", "",
             f"Floor at {f['assumed_ghz']} GHz, {f['threads']} thread(s): forward {f['fwd']} ms, "
             f"forward + backward {f['fwd_bwd']} ms.", "",
             "| variant | B and C | forward wall ms | forward CPU ms | fwd+bwd wall ms | fwd+bwd CPU ms | CPU / floor "
             "| peak MB |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    groups = s.get("groups")
    for row in r["rows"]:
        # a tiny shape's floor rounds to 0 ms: no ratio then
        ratio = f"{row['fwd_bwd_cpu_ms'] / f['fwd_bwd']:.2f}" if f["fwd_bwd"] else "-"
        form = row.get("form", "input-dependent")  # results from before the forms were timed
        form += f" ({groups})" if form == "grouped" and groups else ""
        lines.append(f"| {row['variant']} | {form} | {row['fwd_ms']:.1f} | {row['fwd_cpu_ms']:.1f} | "
                     f"{row['fwd_bwd_ms']:.1f} | {row['fwd_bwd_cpu_ms']:.1f} | {ratio} | {row['peak_mb']} |")
    return "\n".join(lines)


def step_table(r: dict) -> str:
    t = r["timings"]
    scan = f"; scan: {r['scan']}" if "scan" in r else ""
    return "\n".join([
        f"{r['dataset']} presets, batch {r['batch_size']}, K 20; {_machine(r)}; {t['dema']['repeats']} interleaved "
        f"repeats{scan}.",
        "",
        "| model | parameters | median wall ms | min wall ms | median CPU ms |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(f"| {m} | {r['parameters'][m]:,} | {t[m]['ms']:.1f} | {t[m]['min_ms']:.1f} | {t[m]['cpu_ms']:.1f} |"
          for m in ("dema", "dt")),
        "",
        f"Ratio DeMa / DT: **{r['ratio']:.2f}** wall, **{r['cpu_ratio']:.2f}** CPU time (goal: at most 0.8 on AVX-512, 1.0 on AVX2).",
    ])


def act_table(r: dict) -> str:
    t, k = r["timings"], r.get("context_len", {"dema": 20, "dt": 20})
    rnn_path, window_path = r.get("rnn_step_path", "?"), r.get("dema_window_path", "?")
    rows = [(f"RNN-like DeMa, one `step` ({rnn_path}, what `dema eval` runs)", "dema-rnn_step"),
            ("RNN-like DeMa, one `policy.step`", "dema-rnn_step_torch"),
            ("RNN-like DeMa, one step exported (`dema export`), ONNX Runtime", "dema-rnn_step_onnx"),
            (f"Transformer-like DeMa, K {k['dema']} window ({window_path}, what `dema eval` runs)", "dema_window"),
            (f"Transformer-like DeMa, K {k['dema']} window, `predict_last`", "dema_window_torch"),
            (f"Transformer-like DeMa, K {k['dema']} window exported, ONNX Runtime", "dema_window_onnx"),
            (f"DT, K {k['dt']} window", "dt_window"),
            (f"DT, K {k['dt']} window exported, ONNX Runtime", "dt_window_onnx")]
    lines = [
        f"Batch 1; {_machine(r)}" + (f", onnxruntime {r['onnxruntime']} (one thread, IO binding)" if "onnxruntime" in r
                                     else "") + ".", "",
        "| decision | median wall ms | min wall ms | median CPU ms |",
        "| --- | ---: | ---: | ---: |",
        *(f"| {label} | {t[key]['ms']:.3f} | {t[key]['min_ms']:.3f} | {t[key]['cpu_ms']:.3f} |"
          for label, key in rows if key in t),
        "",
        f"RNN step / DT window: **{r['rnn_step_over_dt_window']:.2f}** (goal at most 0.1); "
        f"DeMa window / DT window: **{r['dema_window_over_dt_window']:.2f}** (goal at most 1).",
    ]
    if "onnx_rnn_step_over_rnn_step" in r:
        lines.append(f"Exported RNN step: **{r['onnx_rnn_step_us']:.0f} us**, {r['onnx_rnn_step_over_rnn_step']:.2f}x "
                     "the step `dema eval` runs (goal: below 1, ideally under 50 us).")
    elif r.get("onnx_skipped"):
        lines.append(f"Exported decisions not timed: {r['onnx_skipped']}.")
    return "\n".join(lines)


def _m(value) -> str:
    return "-" if value is None else "0" if value == 0 else f"{value / 1e6:.1f} M"


def preset_rows(r: dict) -> list[str]:
    """Table 7: parameters, counted MACs, uncounted scan work and the training step per preset."""
    train = any("train_step_ms" in p for p in r["presets"])
    head = "| dataset | model | K | parameters | MACs per forward | scan elementwise (not counted) | MACs per decision |"
    rule = "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
    if train:
        head += f" train batch x steps | train step wall ms ({r.get('device', 'cpu')}) | train step CPU ms | peak MB |"
        rule += " ---: | ---: | ---: | ---: |"
    lines = [head, rule]
    for p in r["presets"]:
        line = (f"| {p['dataset']} | {p['model']} | {p['context_len']} | {p['parameters']:,} | {_m(p['macs'])} | "
                f"{_m(p.get('scan_elementwise_macs'))} | {_m(p.get('macs_per_decision'))} |")
        if train:
            line += (f" {p.get('train_batch', '-')} x {p.get('train_steps', '-')} | {p.get('train_step_ms', '-')} | "
                     f"{p.get('train_step_cpu_ms', '-')} | {p.get('train_peak_mb', '-')} |")
        lines.append(line)
    return lines


def cost_tables(r: dict) -> str:
    lines = [f"{_machine(r)}.", "", *preset_rows(r)]
    curves = r["curves"]
    if not curves:
        return "\n".join(lines)
    models = list(dict.fromkeys(c["model"] for c in curves))
    steps = sorted({c["steps"] for c in curves})
    by = {(c["model"], c["steps"]): c for c in curves}
    for key, title in (("forward_cpu_ms", "Forward (CPU ms; RNN-like DeMa: L recurrent steps)"),
                       ("train_step_cpu_ms", "Training step (CPU ms)"), ("train_peak_mb", "Training step peak memory (MB)")):
        lines += ["", f"{title}, batch {curves[0]['batch']}, against sequence length in steps:", "",
                  "| model | " + " | ".join(str(s) for s in steps) + " |", "| --- |" + " ---: |" * len(steps)]
        for m in models:
            cells = [by[(m, s)][key] if (m, s) in by else None for s in steps]
            lines.append(f"| {m} | " + " | ".join("-" if v is None else f"{v:,.1f}" for v in cells) + " |")
    if r.get("plots"):
        lines += ["", "Plots: " + ", ".join(r["plots"])]
    return "\n".join(lines)


def throughput_table(r: dict) -> str:
    lines = [f"{_machine(r)}; device {r['device']}, {r['seconds']} s per row, one torch thread per process.", "",
             "| model | processes | updates/s, total | updates/s, each process |", "| --- | ---: | ---: | --- |"]
    for row in r["rows"]:
        lines.append(f"| {row['model']} | {row['processes']} | {row['updates_per_s_total']:,.1f} | "
                     + ", ".join(f"{v:,.1f}" for v in row["updates_per_s_each"]) + " |")
    return "\n".join(lines)


def scan_gpu_table(r: dict) -> str:
    lines = [f"{_machine(r)}" + (f", GPU {r['gpu']}" if r.get("gpu") and not r.get("cuda_device") else "") + ".", "",
             "| shape B, Di, L, N | path | tile, chunk, warps (blocks BD, BN, CL) | forward ms | fwd+bwd ms | peak MB |",
             "| --- | --- | --- | ---: | ---: | ---: |"]
    for row in r["rows"]:
        shape = ", ".join(map(str, row["shape"]))
        tiles = "" if row.get("tile") is None else (
            f"{row['tile']}, {row['chunk']}, {row['warps']}"
            + (f" ({', '.join(map(str, row['blocks']))})" if row.get("blocks") else ""))
        if "error" in row:
            lines.append(f"| {shape} | {row['variant']} | {tiles} | failed: {row['error'][:80]} | | |")
            continue
        peak = "-" if row["peak_mb"] is None else f"{row['peak_mb']:,.1f}"
        lines.append(f"| {shape} | {row['variant']} | {tiles} | {row['fwd_ms']:.3f} | {row['fwd_bwd_ms']:.3f} | {peak} |")
    return "\n".join(lines)


def node_table(r: dict) -> str:
    """`dema bench node`: the SSM node at each shape, or the RNN-like updates (--updates)."""
    head = _machine(r)
    if "update_ms" in r:
        return (f"{head}\n\n{r['model']} on {r['dataset']}, batch {r['batch_size']} whole trajectories: ms per "
                f"update {', '.join(f'{t:,.0f}' for t in r['update_ms'])}; median {r['median_ms']:,.0f}")
    lines = [head, "", f"SSM node, Di {r['d_inner']}, N {r['d_state']}, median of {r['repeats']}:", "",
             "| batch x steps | forward ms | backward ms | backward min ms |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {row['batch']} x {row['length']} | {row['forward_ms']:.1f} | {row['backward_ms']:.1f} | "
              f"{row['backward_min_ms']:.1f} |" for row in r["rows"]]
    return "\n".join(lines)


RENDERERS = {"scan": scan_table, "step": step_table, "act": act_table, "cost": cost_tables,
             "throughput": throughput_table, "scan_gpu": scan_gpu_table, "node": node_table}


def render_folder(folder: Path) -> str:
    """Every `<name>.json` of RENDERERS found in folder, as `### name` sections, in RENDERERS' order."""
    parts = []
    for name, render in RENDERERS.items():
        path = Path(folder) / f"{name}.json"
        if path.exists():
            parts.append(f"### {name}\n\n{render(json.loads(path.read_text()))}\n")
    return "\n".join(parts)
