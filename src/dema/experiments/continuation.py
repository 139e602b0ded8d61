"""Do more updates change the scores? Finished runs continued past their last update (`dema continue`).

Each run (a finished run directory) is copied once into a folder and resumed there with `dema
train --resume COPY --schedule.updates N`. Under a learning rate that is constant after the warm-up
(no optim.decay_steps, as on MuJoCo) that is the same run trained longer, because resume is exact;
a run whose schedule decays is refused. The original directory and its record stay as they are.

`compare` sets, per run, the final score at the original's last update (its eval.json) beside the
one at N (the continuation's eval.json: same targets, episodes and evaluation seeds), the mean of
the periodic evaluations over the second half of each span, and the training loss (mean of the
log rows of the last 10% of each span). `table` is docs/RESULTS.md's table of those rows, `figure`
the continued learning curves; a row is also kept as a small JSON record (`write_record`), which
`read_records` reads back without the run directories, so the table can be regenerated from the
repository alone.
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

from dema.errors import DemaError
from dema.files import atomic_write, write_between_markers
from dema.run import RunDir

BEGIN, END = "<!-- continue_runs -->", "<!-- end continue_runs -->"


def _eval(run_dir: Path) -> dict | None:
    run = RunDir(run_dir)
    return run.read_json(run.eval_report) if run.eval_report.is_file() else None


def prepare(source: Path, into: Path, updates: int) -> Path:
    """The continuation's directory: a copy of the finished run `source`, made once."""
    run = RunDir(source)
    config = run.read_json(run.config)
    done = _eval(source)
    if done is None or done.get("checkpoint_step") != config["schedule"]["updates"]:
        raise DemaError(f"{source}: not a finished run (no final eval.json at its last update); finish it first")
    if config["optim"].get("decay_steps"):
        raise DemaError(f"{source}: its learning rate decays (optim.decay_steps {config['optim']['decay_steps']}), "
                        "so training it longer is not the same run; continue only runs with a constant rate")
    if updates <= config["schedule"]["updates"]:
        raise DemaError(f"--updates {updates}: {source.name} already has {config['schedule']['updates']}")
    copy = into / source.name
    if not copy.exists():
        partial = into / (source.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)  # a copy interrupted last time
        shutil.copytree(source, partial)
        partial.rename(copy)
    return copy


def continue_run(copy: Path, updates: int) -> None:
    """Train the copy on to `updates` (resumed exactly); a copy already there is left as it is."""
    done = _eval(copy)
    if done is not None and done.get("checkpoint_step") == updates:
        print(f"{copy.name}: continued to {updates:,} already")
        return
    from dema.train.cli import main as train

    print(f"{copy.name}: training on to {updates:,} updates", flush=True)
    if train(["--resume", str(copy), "--schedule.updates", str(updates), "--threads", "1", "--progress", "False"]):
        raise DemaError(f"{copy}: `dema train --resume` failed; see above")


def _first_target_score(report: dict) -> tuple[float, float]:
    first = report["per_target"][0]
    return first["normalized_mean"], first["normalized_std"]


def compare(source: Path, copy: Path) -> dict:
    """The original run at its last update against its continuation at the continuation's last."""
    before, after = _eval(source), _eval(copy)
    u0, u1 = before["checkpoint_step"], after["checkpoint_step"]
    target = before["per_target"][0]["target"]
    run = RunDir(copy)
    evals = [(int(r["step"]), float(r["normalized_mean"])) for r in run.rows(run.evals) if float(r["target"]) == target]
    losses = [(int(r["step"]), float(r["loss"])) for r in run.rows(run.metrics)]

    def mean_over(points, start, end):
        values = [v for s, v in points if start < s <= end]
        return statistics.mean(values) if values else None

    return {"run": source.name, "updates": (u0, u1), "final": (_first_target_score(before), _first_target_score(after)),
            "episodes": after["per_target"][0]["episodes"], "curve": evals,
            "periodic": (mean_over(evals, u0 / 2, u0), mean_over(evals, (u0 + u1) / 2, u1)),
            "loss": (mean_over(losses, 0.9 * u0, u0), mean_over(losses, u0 + 0.9 * (u1 - u0), u1))}


def table(rows: list[dict]) -> list[str]:
    """The Markdown table of compared runs (rows of `compare`), with a sentence on what it shows."""
    def f(v, digits=1):
        return "-" if v is None else f"{v:.{digits}f}"

    u0, u1 = rows[0]["updates"]
    lines = [f"| run | final at {u0:,} | final at {u1:,} | change (in standard errors) | periodic evaluations, mean "
             f"over {u0 // 2:,}-{u0:,} | over {(u0 + u1) // 2:,}-{u1:,} | training loss at {u0:,} | at {u1:,} |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        (m0, s0), (m1, s1) = r["final"]
        lines.append(f"| {r['run']} | {m0:.1f} ± {s0:.1f} | {m1:.1f} ± {s1:.1f} | {m1 - m0:+.1f} "
                     f"({_in_standard_errors(r):+.1f}) | {f(r['periodic'][0])} | {f(r['periodic'][1])} | "
                     f"{f(r['loss'][0], 4)} | {f(r['loss'][1], 4)} |")
    within = sum(abs(_in_standard_errors(r)) < 2 for r in rows)
    drops = [(r["loss"][0] - r["loss"][1]) / r["loss"][0] for r in rows if r["loss"][0] and r["loss"][1] is not None]
    lines += ["", f"Final scores: mean ± std over {rows[0]['episodes']} episodes, normalised, first return target; "
              "the change in standard errors of the difference of the two means (sqrt(s0² / n + s1² / n)); "
              "periodic evaluations: 5 episodes each. "
              f"In {within} of {len(rows)} runs the final score moved by less than 2 standard errors from {u0:,} "
              f"to {u1:,} updates" + (f", while the training loss fell by {100 * min(drops):.0f}-{100 * max(drops):.0f}%."
                                      if drops else ".")]
    return lines


def _in_standard_errors(row: dict) -> float:
    (m0, s0), (m1, s1) = row["final"]
    n = row["episodes"]
    error = (s0 ** 2 / n + s1 ** 2 / n) ** 0.5
    return (m1 - m0) / error if error else 0.0


def figure(rows: list[dict], path: Path) -> None:
    """The continued learning curves, the original's end dashed, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in rows:
        ax.plot(*zip(*r["curve"]), marker=".", label=r["run"])
    ax.axvline(rows[0]["updates"][0], color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("updates")
    ax.set_ylabel("normalised score (5 episodes)")
    ax.set_title("Runs continued past their protocol's end (dashed)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_record(row: dict, folder: Path) -> Path:
    """One compared run as results/continued/<run>.json (tuples as lists)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{row['run']}.json"
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps({"schema": 1, **row}, indent=1) + "\n"))
    return path


def read_records(folder: Path) -> list[dict]:
    """The rows of the records in `folder`, by run name; a damaged record is a DemaError naming it."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            row = {key: data[key] for key in ("run", "updates", "final", "episodes", "curve", "periodic", "loss")}
            row["final"] = tuple(tuple(side) for side in row["final"])
            row["updates"], row["curve"] = tuple(row["updates"]), [tuple(point) for point in row["curve"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DemaError(f"{path}: not a record of `dema continue` ({type(exc).__name__}: {exc})") from None
        rows.append(row)
    if not rows:
        raise DemaError(f"{folder}: no records of continued runs (make them with scripts/continued_runs.sh)")
    return rows


def publish(rows: list[dict], page: Path | None, figure_path: Path | None) -> None:
    """The table into `page` between its markers (else printed), the curves into `figure_path`."""
    body = table(rows)
    if page is None or not write_between_markers(page, BEGIN, END, body):
        print("\n".join(body))
    if figure_path:
        figure(rows, figure_path)
