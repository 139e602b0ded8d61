"""Markdown tables for docs/PERFORMANCE.md from the JSON files `dema bench ... --out bench_out` wrote.

    python scripts/bench_tables.py [bench_out]      # prints the tables; paste them into the doc

Tables are generated from measured outputs only; nothing here is typed in by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _load(folder: Path, name: str):
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _machine(r: dict) -> str:
    return (f"{r['cpu']}, {r['cores']} cores, torch {r['torch']}, numba {r.get('numba')}, "
            f"{r['torch_threads']} torch thread(s), 1-min load {r['load_1min']}")


def scan_table(r: dict) -> str:
    s, f = r["shape"], r["floor_ms"]
    lines = [f"Shape B={s['batch']}, Di={s['d_inner']}, L={s['length']}, N={s['d_state']} "
             f"({r['elements'] / 1e6:.1f}M elements); {_machine(r)}.", "",
             f"Floor at {f['assumed_ghz']} GHz, {f['threads']} thread(s): forward {f['fwd']} ms, "
             f"forward + backward {f['fwd_bwd']} ms.", "",
             "| variant | forward wall ms | forward CPU ms | fwd+bwd wall ms | fwd+bwd CPU ms | CPU / floor | peak MB |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in r["rows"]:
        lines.append(f"| {row['variant']} | {row['fwd_ms']:.1f} | {row['fwd_cpu_ms']:.1f} | {row['fwd_bwd_ms']:.1f} | "
                     f"{row['fwd_bwd_cpu_ms']:.1f} | {row['fwd_bwd_cpu_ms'] / f['fwd_bwd']:.2f} | {row['peak_mb']} |")
    return "\n".join(lines)


def step_table(r: dict) -> str:
    t = r["timings"]
    return "\n".join([
        f"{r['dataset']} presets, batch {r['batch_size']}, K 20; {_machine(r)}; {t['dema']['repeats']} interleaved repeats.",
        "",
        "| model | parameters | median wall ms | min wall ms | median CPU ms |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(f"| {m} | {r['parameters'][m]:,} | {t[m]['ms']:.1f} | {t[m]['min_ms']:.1f} | {t[m]['cpu_ms']:.1f} |"
          for m in ("dema", "dt")),
        "",
        f"Ratio DeMa / DT: **{r['ratio']:.2f}** wall, **{r['cpu_ratio']:.2f}** CPU time (goal: at most 0.5).",
    ])


def act_table(r: dict) -> str:
    t = r["timings"]
    rows = [("RNN-like DeMa, one `step`", "dema-rnn_step"), ("Transformer-like DeMa, K 20 window", "dema_window"),
            ("DT, K 20 window", "dt_window")]
    return "\n".join([
        f"Batch 1; {_machine(r)}.", "",
        "| decision | median wall ms | min wall ms | median CPU ms |",
        "| --- | ---: | ---: | ---: |",
        *(f"| {label} | {t[k]['ms']:.2f} | {t[k]['min_ms']:.2f} | {t[k]['cpu_ms']:.2f} |" for label, k in rows),
        "",
        f"RNN step / DT window: **{r['rnn_step_over_dt_window']:.2f}** (goal at most 0.3); "
        f"DeMa window / DT window: **{r['dema_window_over_dt_window']:.2f}** (goal at most 1).",
    ])


def cost_tables(r: dict) -> str:
    lines = [f"{_machine(r)}.", "", "| dataset | model | K | parameters | MACs per forward (batch 1) |",
             "| --- | --- | ---: | ---: | ---: |"]
    lines += [f"| {p['dataset']} | {p['model']} | {p['context_len']} | {p['parameters']:,} | {p['macs'] / 1e6:.1f} M |"
              for p in r["presets"]]
    curves = r["curves"]
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
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else Path("bench_out")
    for name, render in (("scan", scan_table), ("step", step_table), ("act", act_table), ("cost", cost_tables)):
        result = _load(folder, name)
        if result is not None:
            print(f"### {name}\n\n{render(result)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
