"""`dema report` on small synthetic run records written here (no training, no simulator)."""

import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dema.cli import main
from dema.experiments.report import (REFERENCES, RULE, build_report, hierarchical_bootstrap, markdown, verdict_of,
                                    write_figures)

DATASETS = ("hopper-medium", "walker2d-medium")
SEEDS = (0, 1, 2)
PARAMS = {"dema": 175_503, "dt": 727_567, "dema-bl3d": 180_000, "dema-rnn": 175_503}


def record(dataset, model, seed, score, variant=None, grid="mujoco-test", params=None, updates=1000, lr=1e-4):
    """A run record as dema.experiments.records writes it, cut to what a report reads."""
    variant = variant or {}
    suffix = "".join(f"_{k.split('.')[-1]}-{v}" for k, v in sorted(variant.items()))
    curve = [{"step": step, "target": 3600.0, "episodes": 5, "return_mean": 0.0, "return_std": 0.0,
              "normalized_mean": score * step / updates, "normalized_std": 1.0} for step in (250, 500, 750, 1000)]
    return {
        "schema": 1, "run": f"{dataset}_{model}_cpu-test{suffix}_s{seed}", "grid": grid,
        "dataset": dataset, "model": model, "seed": seed, "protocol": "cpu-test", "variant": variant,
        "normalized_mean": score, "normalized_std": 3.0, "best_checkpoint_normalized_mean": score + 1.0,
        "best_during_training": {"step": updates, "normalized_mean": score + 2.0, "episodes": 5},
        "params": params or PARAMS.get(model, 200_000),
        "config": {"model_name": model, "seed": seed, "protocol": "cpu-test",
                   "data": {"dataset": dataset, "delayed": bool(variant.get("data.delayed"))},
                   "model": {"context_len": variant.get("model.context_len", 20)},
                   "optim": {"lr": lr, "warmup_steps": 100, "batch_size": 64},
                   "schedule": {"updates": updates, "eval_every": 250},
                   "eval": {"episodes": 10, "train_episodes": 5, "seeds": [0], "targets": []}},
        "eval": {"normalized_mean": score, "targets": [3600.0, 1800.0], "seeds": [0], "episodes_per_seed": 10,
                 "updates": updates, "training": {"step": updates, "train_seconds": 60.0, "wall_seconds": 90.0}},
        "evals": curve,
        "metrics": [{"step": updates, "loss": 0.1, "grad_norm": 1.0, "lr": 1e-4, "ms_per_step": 60.0,
                     "train_seconds": 60.0}],
        "dataset_identity": {"path": f"datasets/{dataset}-v5.hdf5", "bytes": 1, "sha256": "ab" * 32,
                             "transitions": 100_000, "episodes": 100},
        "provenance": {"commit": "0" * 40, "recorded_at": "2026-01-01T00:00:00+00:00", "versions": {}},
    }


def write(folder: Path, records) -> Path:
    for rec in records:
        path = folder / rec["grid"] / f"{rec['run']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec))
    return folder


def noise(dataset, seed):
    return [[-1.5, 0.5, 1.0], [1.0, -0.5, -0.5]][DATASETS.index(dataset)][seed]


def grid_records(delta_bl3d=0.0):
    """DeMa clearly above DT; BL3D equal to DeMa up to noise of either sign."""
    out = []
    for dataset in DATASETS:
        for seed in SEEDS:
            base = 50.0 + 10 * DATASETS.index(dataset)
            out.append(record(dataset, "dema", seed, base + 20.0 + noise(dataset, seed)))
            out.append(record(dataset, "dt", seed, base - noise(dataset, seed)))
            out.append(record(dataset, "dema-bl3d", seed, base + 20.0 + delta_bl3d + 4 * noise(dataset, (seed + 1) % 3)))
    return out


def claim(report_json, start):
    return next(c for c in report_json["claims"] if c["claim"].startswith(start))


@pytest.fixture
def results(tmp_path):
    return write(tmp_path / "results", grid_records())


def test_json_keys_verdicts_and_aggregates(results, capsys):
    assert main(["report", str(results), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"runs", "aggregates", "claims", "datasets", "flattening", "coverage", "problems"}
    assert len(out["runs"]) == 18 and out["problems"] == []
    for key in ("dataset", "model", "seed", "variant", "protocol", "normalized_mean",
                "best_checkpoint_normalized_mean", "params"):
        assert key in out["runs"][0]
    assert all(set(c) == {"claim", "verdict", "evidence", "fragile"} for c in out["claims"])

    dema_dt = claim(out, "DeMa beats DT on MuJoCo, at each")
    assert dema_dt["verdict"] == "supported"
    ev = dema_dt["evidence"]
    assert ev["pairs"] == 6 and ev["datasets"] == list(DATASETS) and ev["ci95"][0] > 0
    assert ev["mean_difference"] == pytest.approx(20.0)
    assert claim(out, "DeMa has about a quarter")["verdict"] == "supported"
    assert claim(out, "B3LD (dema) beats BL3D (dema-bl3d) on MuJoCo")["verdict"] == "inconclusive"
    assert claim(out, "DeMa beats DT on Atari")["verdict"] == "no data"
    assert "no runs of dema" in claim(out, "DeMa beats DT on Atari")["evidence"]["missing"]
    rnn = claim(out, "Transformer-like DeMa beats RNN-like")
    assert rnn["verdict"] == "no data" and "dema-rnn" in rnn["evidence"]["missing"]
    assert claim(out, "DeMa is less hurt by delayed rewards")["verdict"] == "no data"

    assert {a["comparison"] for a in out["aggregates"]} == {"DeMa vs DT", "DeMa vs DeMa-BL3D"}
    by_model = {a["model"]: a for a in out["aggregates"] if a["comparison"] == "DeMa vs DT"}
    assert set(by_model) == {"dema", "dt"}
    dema = by_model["dema"]
    assert dema["tasks"] == list(DATASETS) and dema["runs_per_task"] == 3
    assert dema["iqm_ci95"][0] <= dema["iqm"] <= dema["iqm_ci95"][1]
    assert dema["mean"] == pytest.approx(75.0)
    assert by_model["dt"]["mean_ci95"][1] < dema["mean_ci95"][0]


def test_an_ablation_on_fewer_datasets_does_not_shrink_the_main_comparison(tmp_path):
    """DeMa-RNN ran on hopper-medium only: DeMa vs DT still aggregates both datasets, and DeMa vs
    DeMa-RNN is its own comparison on hopper-medium."""
    recs = []
    for dataset in DATASETS:
        for seed in SEEDS:
            recs += [record(dataset, "dema", seed, 70 + noise(dataset, seed)), record(dataset, "dt", seed, 60)]
    recs += [record("hopper-medium", "dema-rnn", seed, 40) for seed in SEEDS]
    rows = build_report([write(tmp_path / "results", recs)]).to_json()["aggregates"]
    main_rows = {a["model"]: a for a in rows if a["comparison"] == "DeMa vs DT"}
    rnn_rows = {a["model"]: a for a in rows if a["comparison"] == "DeMa vs DeMa-RNN"}
    assert set(main_rows) == {"dema", "dt"} and set(rnn_rows) == {"dema", "dema-rnn"}
    assert main_rows["dema"]["tasks"] == list(DATASETS) and main_rows["dt"]["mean"] == pytest.approx(60.0)
    assert rnn_rows["dema"]["tasks"] == ["hopper-medium"] and rnn_rows["dema-rnn"]["mean"] == pytest.approx(40.0)
    assert rnn_rows["dema"]["mean"] == pytest.approx(70 + sum(noise("hopper-medium", s) for s in SEEDS) / 3)
    assert len(rows) == 4


def test_aggregates_use_the_seeds_every_model_ran_and_leave_out_a_model_that_would_shrink_them(tmp_path):
    """While seeds land: DT has seeds 0-1 on walker2d-medium, so DeMa vs DT aggregates two seeds of
    both datasets (a 2 x 2 matrix beats 3 x 1 and 1 x 2); BC on one dataset would shrink it and is
    left out, DC on all joins; a variant that shares no seed with DeMa gets no comparison at all."""
    recs = []
    for dataset in DATASETS:
        for seed in SEEDS:
            recs += [record(dataset, "dema", seed, 70 + noise(dataset, seed)), record(dataset, "dc", seed, 55)]
            if dataset == "hopper-medium" or seed < 2:
                recs.append(record(dataset, "dt", seed, 60))
    recs += [record("hopper-medium", "bc", seed, 40) for seed in SEEDS]
    recs.append(record("hopper-medium", "dema-rnn", 7, 30))
    rows = build_report([write(tmp_path / "results", recs)]).to_json()["aggregates"]
    assert {a["comparison"] for a in rows} == {"DeMa vs DT vs DC vs BC"}
    by_model = {a["model"]: a for a in rows}
    assert set(by_model) == {"dema", "dt", "dc"} and by_model["dema"]["left_out"] == ["bc"]
    dema = by_model["dema"]
    assert dema["tasks"] == list(DATASETS) and dema["runs_per_task"] == 2
    assert dema["mean"] == pytest.approx(70 + sum(noise(d, s) for d in DATASETS for s in (0, 1)) / 4)


def test_dema_against_dt_at_equal_learning_rates_pairs_the_control_runs(tmp_path):
    """DeMa trains at 1e-3 on walker2d-medium, where lr-control has DT at 1e-3 too: the equal-rate control
    pairs DeMa with that DT there and with the table's DT (1e-4) on hopper-medium, where both use 1e-4."""
    recs = []
    for seed in SEEDS:
        recs += [record("hopper-medium", "dema", seed, 60.0), record("hopper-medium", "dt", seed, 58.0),
                 record("walker2d-medium", "dema", seed, 80.0, lr=1e-3), record("walker2d-medium", "dt", seed, 50.0),
                 record("walker2d-medium", "dt", seed, 79.0, {"optim.lr": 1e-3}, grid="lr-control", lr=1e-3)]
    report = build_report([write(tmp_path / "results", recs)]).to_json()
    equal = claim(report, "DeMa beats DT on MuJoCo, at equal")
    assert equal["evidence"]["pairs"] == 6 and "by_learning_rate" not in equal["evidence"]
    assert equal["evidence"]["per_dataset_mean_difference"] == {"hopper-medium": 2.0, "walker2d-medium": 1.0}
    assert equal["verdict"] == "supported"
    table = claim(report, "DeMa beats DT on MuJoCo, at each")["evidence"]  # the table's pairs only, not the control's DT
    assert table["pairs"] == 6 and table["mean_difference"] == pytest.approx(16.0)
    assert claim(report, "Control: DT at a swept learning rate")["evidence"]["mean_difference"] == pytest.approx(29.0)


def test_evidence_also_scores_the_pairs_by_best_checkpoint(tmp_path):
    """The verdict reads the final weights; the evidence adds the paper's way, the best checkpoint."""
    recs = []
    for seed in SEEDS:
        dema, dt = record("hopper-medium", "dema", seed, 60.0), record("hopper-medium", "dt", seed, 58.0)
        dema["best_checkpoint_normalized_mean"], dt["best_checkpoint_normalized_mean"] = 90.0 + seed, 59.0
        recs += [dema, dt]
    report = build_report([write(tmp_path / "results", recs)])
    ev = claim(report.to_json(), "DeMa beats DT on MuJoCo, at each")["evidence"]
    assert ev["mean_difference"] == pytest.approx(2.0)
    assert ev["best_checkpoint"]["mean_difference"] == pytest.approx(32.0)
    assert ev["best_checkpoint"]["ci95"][0] >= 31.0 - 1e-9
    assert "by best checkpoint instead (the paper's way, not the rule's): mean A − B +32.0" in markdown(
        report, "dema report", [], tmp_path)


def test_pairs_at_different_learning_rates_are_split_by_rate(tmp_path, capsys, monkeypatch):
    """DeMa at 1e-3 on walker2d-medium, at DT's 1e-4 on hopper-medium: the evidence splits the paired
    differences by the two rates, and says nothing of rates when they agree (the fixture's default)."""
    recs = []
    for seed in SEEDS:
        recs += [record("hopper-medium", "dema", seed, 60.0), record("hopper-medium", "dt", seed, 58.0),
                 record("walker2d-medium", "dema", seed, 80.0 + 3 * seed, lr=1e-3),
                 record("walker2d-medium", "dt", seed, 50.0)]
    results = write(tmp_path / "results", recs)
    ev = claim(build_report([results]).to_json(), "DeMa beats DT on MuJoCo, at each")["evidence"]
    # each group with the rule's interval: the walker2d differences 30, 33, 36 resample to [30, 36]
    assert ev["by_learning_rate"] == {"A lr 0.0001, B lr 0.0001": {"pairs": 3, "mean_difference": 2.0, "ci95": [2.0, 2.0]},
                                      "A lr 0.001, B lr 0.0001": {"pairs": 3, "mean_difference": 33.0, "ci95": [30.0, 36.0]}}
    assert sorted((d["dataset"], d["seed"], d["difference"], d["group"]) for d in ev["differences"]) == [
        ("hopper-medium", seed, 2.0, "A lr 0.0001, B lr 0.0001") for seed in SEEDS] + [
        ("walker2d-medium", seed, 30.0 + 3 * seed, "A lr 0.001, B lr 0.0001") for seed in SEEDS]
    monkeypatch.chdir(tmp_path)  # Markdown on stdout writes no file; progress goes to stderr
    assert main(["report", str(results)]) == 0
    out, err = capsys.readouterr()
    assert "by learning rate: A lr 0.0001, B lr 0.0001: 3 pairs, mean A − B +2.0 [+2.0, +2.0], A lr 0.001, B lr 0.0001: " \
           "3 pairs, mean A − B +33.0 [+30.0, +36.0]" in out
    assert list(tmp_path.iterdir()) == [results] and "dema report: read 12 run records" in err
    assert main(["report", str(results), "--figures", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "claims.png").stat().st_size > 10_000  # the paired differences
    unrecorded = record("walker2d-medium", "dt", 0, 50.0)
    del unrecorded["config"]["optim"]["lr"]  # an older record without the rate: named "?", not a crash
    older = [r for r in recs if r["run"] != unrecorded["run"]] + [unrecorded]
    ev = claim(build_report([write(tmp_path / "unrecorded", older)]).to_json(),
               "DeMa beats DT on MuJoCo, at each")["evidence"]
    assert ev["by_learning_rate"]["A lr 0.001, B lr ?"] == {"pairs": 1, "mean_difference": 30.0}  # one pair: no interval
    same = claim(build_report([write(tmp_path / "same", grid_records())]).to_json(), "DeMa beats DT on MuJoCo, at each")
    assert "by_learning_rate" not in same["evidence"]
    assert claim(build_report([results]).to_json(), "Control: DT at a swept learning rate")["verdict"] == "no data"


def test_the_learning_rate_control_pairs_dt_at_the_swept_rate_with_dt_at_its_own(tmp_path):
    """Grid lr-control: dt with {"optim.lr": 0.001} against mujoco-main's dt on the same (dataset, seed);
    the variant keeps it out of DeMa >= DT."""
    recs = []
    for dataset in DATASETS:
        for seed in SEEDS:
            recs += [record(dataset, "dema", seed, 70.0 + noise(dataset, seed), lr=1e-3),
                     record(dataset, "dt", seed, 40.0 + noise(dataset, seed)),
                     record(dataset, "dt", seed, 65.0 - noise(dataset, seed), {"optim.lr": 0.001}, lr=1e-3)]
    report = build_report([write(tmp_path / "results", recs)]).to_json()
    control = claim(report, "Control: DT at a swept learning rate")
    assert control["verdict"] == "supported" and control["evidence"]["pairs"] == 6
    assert control["evidence"]["mean_difference"] == pytest.approx(25.0)
    dema_dt = claim(report, "DeMa beats DT on MuJoCo, at each")["evidence"]
    assert dema_dt["pairs"] == 6 and dema_dt["mean_difference"] == pytest.approx(30.0)


def test_aggregate_intervals_are_the_same_in_every_report(results):
    """The same records give the same intervals (rliable resamples with NumPy's global generator, which
    the report seeds for the call) and the caller's global generator state is left as it was."""
    np.random.seed(123)
    first = build_report([results]).to_json()["aggregates"]
    after = np.random.random()
    np.random.seed(7)  # a different global state before the second report
    second = build_report([results]).to_json()["aggregates"]
    np.random.seed(123)
    assert np.random.random() == after
    assert first == second and any(a["iqm_ci95"][0] < a["iqm_ci95"][1] for a in first)


def test_equal_scores_are_inconclusive_for_beats_and_supported_within_the_margin():
    diffs = [1.5, -2.0, 0.5, -1.0, 2.0, -0.5]
    datasets = ["a", "a", "a", "b", "b", "b"]
    mean, low, high = hierarchical_bootstrap(diffs, datasets)
    assert low < 0 < high and low > -5
    assert verdict_of(low, high, "beats", 6, 2) == "inconclusive"
    assert verdict_of(low, high, "at_least", 6, 2) == "supported"  # within the equivalence margin
    assert verdict_of(-30.0, -10.0, "at_least", 6, 2) == "not supported"
    assert verdict_of(5.0, 10.0, "beats", 4, 2) == "inconclusive (4 pairs)"  # too few pairs
    assert verdict_of(5.0, 10.0, "beats", 6, 1) == "inconclusive (6 pairs)"  # one dataset
    assert verdict_of(5.0, 10.0, "beats", 5, 1, one_game=True) == "supported"  # 5 seeds on one game
    assert hierarchical_bootstrap(diffs, datasets) == (mean, low, high)  # fixed seed
    assert "10,000 resamples" in RULE and "hierarchical bootstrap" in RULE


def test_one_dataset_with_a_huge_effect_is_not_a_supported_claim():
    """Nine datasets, five seeds each: a huge effect on one, none on the other eight. Resampling the 45
    pairs as if independent (rule v1) puts the interval above 0; resampling the datasets and then the
    seeds within them (rule v2) does not: eight of nine datasets show nothing, which one more draw of
    datasets could equally show."""
    datasets = [f"d{i}" for i in range(9)]
    diffs, labels = [], []
    for i, dataset in enumerate(datasets):
        for seed, wobble in enumerate((-2.0, -1.0, 0.0, 1.0, 2.0)):
            diffs.append((60.0 if i == 0 else 0.0) + wobble)
            labels.append(dataset)
    rng = np.random.default_rng(0)  # rule v1: the pairs resampled as if independent
    v1 = np.percentile(np.asarray(diffs)[rng.integers(0, 45, size=(10_000, 45))].mean(axis=1), [2.5, 97.5])
    assert v1[0] > 0  # overconfident
    mean, low, high = hierarchical_bootstrap(diffs, labels)
    assert mean == pytest.approx(60.0 / 9)
    assert low < 0 < high
    assert verdict_of(low, high, "beats", 45, 9) == "inconclusive"
    # the same size of effect on every dataset is a claim the rule supports
    even = [60.0 / 9 + w for w in (-2.0, -1.0, 0.0, 1.0, 2.0)] * 9
    _, low, _ = hierarchical_bootstrap(even, sorted(labels))
    assert verdict_of(low, 99.0, "beats", 45, 9) == "supported"


def _claim_records(tmp_path, a_scores, b_scores, a_model="dema", b_model="dema-bl3d", datasets=("hopper-medium", "walker2d-medium")):
    """Records of two models whose final scores are a_scores[dataset][seed] and b_scores[...]."""
    recs = []
    for dataset in datasets:
        for seed, (a, b) in enumerate(zip(a_scores[dataset], b_scores[dataset])):
            recs += [record(dataset, a_model, seed, a), record(dataset, b_model, seed, b)]
    return recs


def test_a_claim_needs_five_pairs_over_two_datasets(tmp_path):
    """The same clear effect: 3 seeds on two datasets (6 pairs) is a verdict; 2 seeds (4 pairs) is
    "inconclusive (4 pairs)"; 5 seeds on one MuJoCo dataset is still inconclusive for want of a second."""
    a = {"hopper-medium": [80.0, 82.0, 81.0], "walker2d-medium": [70.0, 71.0, 72.0]}
    b = {"hopper-medium": [60.0, 61.0, 59.0], "walker2d-medium": [50.0, 52.0, 51.0]}
    six = build_report([write(tmp_path / "six", _claim_records(tmp_path, a, b))]).to_json()
    assert claim(six, "B3LD (dema) beats BL3D (dema-bl3d) on MuJoCo")["verdict"] == "supported"
    four = build_report([write(tmp_path / "four", _claim_records(
        tmp_path, {k: v[:2] for k, v in a.items()}, {k: v[:2] for k, v in b.items()}))]).to_json()
    c = claim(four, "B3LD (dema) beats BL3D (dema-bl3d) on MuJoCo")
    assert c["verdict"] == "inconclusive (4 pairs)"
    assert c["evidence"]["would_change"] == "at least 5 pairs over 2 datasets (now 4 on 2)"
    one = {"hopper-medium": [80.0, 82.0, 81.0, 79.0, 80.0]}
    single = build_report([write(tmp_path / "single", _claim_records(
        tmp_path, one, {"hopper-medium": [60.0] * 5}, datasets=("hopper-medium",)))]).to_json()
    assert claim(single, "B3LD (dema) beats BL3D (dema-bl3d) on MuJoCo")["verdict"] == "inconclusive (5 pairs)"


def test_a_dataset_neither_model_learned_is_left_out(tmp_path):
    """Pong at random play for both models (final scores within 2 standard errors of random play,
    1.7 gamer-normalised there) is named and left out; Breakout, learned, carries the Atari claim, and
    5 seeds on that one game are enough for a verdict."""
    recs = []
    for seed in range(5):
        recs += [record("atari/Pong", "dema", seed, [0.6, 2.0, 1.1, 0.0, 2.8][seed]),
                 record("atari/Pong", "dt", seed, [2.8, 1.4, 0.6, 1.1, 2.0][seed]),
                 record("atari/Breakout", "dema", seed, 120.0 + seed),
                 record("atari/Breakout", "dt", seed, 60.0 + 2 * seed)]
    c = claim(build_report([write(tmp_path / "results", recs)]).to_json(), "DeMa beats DT on Atari")
    assert c["evidence"]["not_learned"] == ["atari/Pong"]
    assert c["evidence"]["datasets"] == ["atari/Breakout"] and c["evidence"]["pairs"] == 5
    assert c["verdict"] == "supported"
    pong_learned = [r for r in recs if r["dataset"] != "atari/Pong" or r["model"] != "dt"] + [
        record("atari/Pong", "dt", seed, 30.0 + seed) for seed in range(5)]
    c = claim(build_report([write(tmp_path / "learned", pong_learned)]).to_json(), "DeMa beats DT on Atari")
    assert "not_learned" not in c["evidence"] and c["evidence"]["pairs"] == 10


def test_maze2d_is_an_extension_apart_from_the_papers_claims(tmp_path):
    """DeMa and DT on two maze2d datasets give the extension's row (a verdict from 6 pairs), enter
    neither MuJoCo claim, and are not counted among the paper's claims on the front page."""
    recs = []
    for seed in SEEDS:
        for i, dataset in enumerate(("maze2d-umaze", "maze2d-medium")):
            recs += [record(dataset, "dema", seed, 60.0 + 10 * i + seed), record(dataset, "dt", seed, 40.0 + 10 * i)]
    report = build_report([write(tmp_path / "results", recs)])
    c = claim(report.to_json(), "Extension: DeMa beats DT on maze2d")
    assert c["verdict"] == "supported" and c["evidence"]["pairs"] == 6
    assert c["evidence"]["datasets"] == ["maze2d-medium", "maze2d-umaze"]
    assert claim(report.to_json(), "DeMa beats DT on MuJoCo, at each")["verdict"] == "no data"
    page = markdown(report, "dema report results", [], tmp_path)
    assert "0 of the paper's 15 claims" in page
    assert "- maze2d: datasets collected here" in page
    mujoco_only = build_report([write(tmp_path / "mujoco", grid_records())])
    assert "- maze2d:" not in markdown(mujoco_only, "dema report results", [], tmp_path)
    assert claim(mujoco_only.to_json(), "Extension: DeMa beats DT on maze2d")["verdict"] == "no data"


def test_a_verdict_that_changes_with_the_score_is_fragile(tmp_path):
    """Final weights say DeMa beats BL3D; the last three periodic evaluations say the opposite (the
    fixture's curve ends at the final score, so the evaluations are rewritten): fragile. With the same
    curve shape on both sides the verdict is stable."""
    a = {"hopper-medium": [80.0, 82.0, 81.0], "walker2d-medium": [70.0, 71.0, 72.0]}
    b = {"hopper-medium": [60.0, 61.0, 59.0], "walker2d-medium": [50.0, 52.0, 51.0]}
    recs = _claim_records(tmp_path, a, b)
    stable = build_report([write(tmp_path / "stable", recs)]).to_json()
    c = claim(stable, "B3LD (dema) beats BL3D (dema-bl3d) on MuJoCo")
    assert c["fragile"] is False and c["evidence"]["sensitivity"]["last_three_evals"]["verdict"] == "supported"
    for rec in recs:  # the last three evaluations of BL3D far above DeMa's
        for row in rec["evals"][-3:]:
            row["normalized_mean"] = 100.0 if rec["model"] == "dema-bl3d" else 10.0
    flipped = build_report([write(tmp_path / "flipped", recs)]).to_json()
    c = claim(flipped, "B3LD (dema) beats BL3D (dema-bl3d) on MuJoCo")
    assert c["verdict"] == "supported" and c["fragile"] is True
    assert c["evidence"]["sensitivity"]["last_three_evals"]["verdict"] == "not supported"
    assert "changes with the last three evals" in c["evidence"]["would_change"]
    assert c["evidence"]["sensitivity"]["second_target"] == {  # not recorded here
        "verdict": "no data", "pairs": 0, "verdict_states_pairs": False}


def test_the_margin_claims_show_the_seeds_spread_and_params_without_timestep_tables(tmp_path):
    recs = []
    for dataset in DATASETS:
        for seed in SEEDS:
            recs += [record(dataset, "dema", seed, 70.0 + 4 * noise(dataset, seed)),
                     record(dataset, "dema", seed, 70.0, {"model.position_embedding": True}),
                     record(dataset, "dt", seed, 60.0)]
    for rec in recs:  # DT's timestep table: 1,000 x 128 of its 727,567 parameters
        rec["config"]["model"].update(position_embedding=rec["model"] == "dt", max_ep_len=1000, embed_dim=128)
    report = build_report([write(tmp_path / "results", recs)])
    out = report.to_json()
    spread = claim(out, "No position embedding is needed")["evidence"]["seed_sd_of_difference"]
    assert spread["hopper-medium"] == pytest.approx(float(np.std([4 * noise("hopper-medium", s) for s in SEEDS], ddof=1)), abs=1e-3)
    params = claim(out, "DeMa has about a quarter")["evidence"]
    assert params["params_ratio_without_timestep_tables"]["hopper-medium"] == pytest.approx(
        175_503 / (727_567 - 128_000), abs=1e-3)
    text = markdown(report, "dema report", [], tmp_path)
    assert "the margin 5 against the seeds' sd of A − B per dataset: hopper-medium" in text
    assert "## The paper's claims at a glance" in text and text.index("Rule (version 2)") < text.index("## How our data")


def test_variant_claims_pair_on_the_rest_of_the_variant(tmp_path):
    recs = []
    for dataset in DATASETS:
        for seed in SEEDS:
            n = noise(dataset, seed)
            recs += [record(dataset, "dema", seed, 70 + n), record(dataset, "dt", seed, 60 - n),
                     record(dataset, "dema", seed, 65 + n, {"data.delayed": True}),
                     record(dataset, "dt", seed, 40 + n, {"data.delayed": True}),
                     record(dataset, "dema", seed, 69 - n, {"model.position_embedding": True}),
                     record(dataset, "dema", seed, 50 + n, {"model.context_len": 30}),
                     record(dataset, "dema", seed, 72 + n, {"model.context_len": 8}),
                     record(dataset, "dema-rnn", seed, 40 + n)]
    report = build_report([write(tmp_path / "results", recs)]).to_json()
    delayed = claim(report, "DeMa is less hurt by delayed rewards")
    assert delayed["verdict"] == "supported"
    assert delayed["evidence"]["dema_drop_mean"] == pytest.approx(5.0)
    assert delayed["evidence"]["dt_drop_mean"] == pytest.approx(20.0, abs=1.0)
    assert claim(report, "No position embedding is needed")["verdict"] == "supported"
    k = claim(report, "The best context length K is short")
    assert k["verdict"] == "supported" and k["evidence"]["by_dataset"]["hopper-medium"]["best_K"] == 8
    assert claim(report, "Transformer-like DeMa beats RNN-like")["verdict"] == "supported"
    # the DeMa vs DT claim uses only runs without delayed rewards or an added position embedding
    assert claim(report, "DeMa beats DT on MuJoCo, at each")["evidence"]["pairs"] == 6
    groups = {(r["model"], json.dumps(r["variant"], sort_keys=True)) for r in report["runs"]}
    assert ("dema", '{"model.context_len": 8}') in groups and ("dema", "{}") in groups


def test_best_context_length_is_chosen_on_the_seeds_every_k_has(tmp_path):
    # K 20 has three seeds (mujoco-main), K 8 and K 30 only seed 0 (a sweep half run): on seed 0,
    # K 8 is the best short K; over K 20's own three seeds it would look better than K 8
    recs = []
    for dataset in DATASETS:
        recs += [record(dataset, "dema", 0, 40.0), record(dataset, "dema", 1, 90.0),
                 record(dataset, "dema", 2, 90.0), record(dataset, "dema", 0, 60.0, {"model.context_len": 8}),
                 record(dataset, "dema", 0, 50.0, {"model.context_len": 30})]
    report = build_report([write(tmp_path / "results", recs)]).to_json()
    k = claim(report, "The best context length K is short")
    assert k["evidence"]["pairs"] == 2 and k["evidence"]["mean_difference"] == pytest.approx(10.0)
    hopper = k["evidence"]["by_dataset"]["hopper-medium"]
    assert hopper["best_K"] == 8 and hopper["chosen_on_seeds"] == [0]
    assert hopper["mean_by_K"] == {"8": 60.0, "20": 40.0, "30": 50.0}
    text = markdown(build_report([tmp_path / "results"]), "dema report", [], tmp_path)
    assert "best K: hopper-medium 8 (on seed 0)" in text
    assert "the side with more values to pick from (K <= 20: 2, K > 20: 1) gains from that" in text


def test_sensitivity_names_a_reads_pair_count_once():
    from dema.experiments.report.document import _sensitivity_text
    claim_ = {"fragile": False, "evidence": {"pairs": 5, "sensitivity": {
        "last_three_evals": {"verdict": "inconclusive", "pairs": 5},
        "second_target": {"verdict": "inconclusive (4 pairs)", "pairs": 4, "verdict_states_pairs": True}}}}
    assert _sensitivity_text(claim_) == "stable; last 3 evals: inconclusive, 2nd target: inconclusive (4 pairs)"
    claim_["evidence"]["sensitivity"]["second_target"] = {"verdict": "supported", "pairs": 6, "verdict_states_pairs": False}
    assert _sensitivity_text(claim_).endswith("2nd target: supported (6 pairs)")
    claim_["evidence"]["sensitivity"]["second_target"] = {"verdict": "no data", "pairs": 0, "verdict_states_pairs": False}
    assert _sensitivity_text(claim_).endswith("2nd target: no data (0 pairs)")


def test_sensitivity_entries_say_when_their_verdict_states_the_pair_count():
    """The flag comes from where the verdict is made (rule.enough), not from the verdict's wording."""
    from dema.experiments.report.claims import _sensitivity_entry
    few = {"verdict": "inconclusive (3 pairs)", "evidence": {"pairs": 3, "enough": False}}
    many = {"verdict": "inconclusive", "evidence": {"pairs": 9, "enough": True}}
    none = {"verdict": "no data", "evidence": {"missing": "no runs"}}
    assert _sensitivity_entry(few) == {"verdict": "inconclusive (3 pairs)", "pairs": 3, "verdict_states_pairs": True}
    assert _sensitivity_entry(many)["verdict_states_pairs"] is False
    assert _sensitivity_entry(none) == {"verdict": "no data", "pairs": 0, "verdict_states_pairs": False}


def test_damaged_record_is_a_problem_and_the_rest_is_reported(results, tmp_path, capsys):
    (results / "mujoco-test" / "broken.json").write_text('{"schema": 1, "run": ')
    bad = record("hopper-medium", "dema", 7, 1.0)
    bad["normalized_mean"] = "n/a"
    (results / "mujoco-test" / "bad-number.json").write_text(json.dumps(bad))
    assert main(["report", str(results), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["runs"]) == 18
    assert len(out["problems"]) == 2
    assert any("broken.json" in p for p in out["problems"])
    assert any("normalized_mean" in p for p in out["problems"])


def test_markdown_report_with_figures(results, tmp_path):
    out = tmp_path / "docs" / "REPORT.md"
    assert main(["report", str(results), "--out", str(out)]) == 0
    text = out.read_text()
    assert "Generated by `dema report`" in text and "do not edit by hand" in text
    assert f"dema report {results} --out {out}" in text
    assert "**supported**" in text and "Rule (version 2)" in text and "equivalence margin" in text
    assert "not D4RL's own files" in text and "100,000" in text
    figures = sorted((tmp_path / "docs" / "REPORT_figures").glob("*.png"))
    assert [p.name for p in figures] == ["claims.png", "final_scores_cpu-test.png", "learning_curves_cpu-test.png",
                                         "loss_curves_cpu-test.png"]
    assert all(p.stat().st_size > 5000 for p in figures)
    assert "](REPORT_figures/learning_curves_cpu-test.png)" in text  # linked relatively
    # references beside ours, each with its source
    assert "67.60" in text and "Chen et al." in text and "Tarasov et al." in text
    assert "| cpu-test | hopper-medium | dema, dt, dema-bl3d | 0, 1, 2 | 1,000 | 100 |" in text


def test_markdown_to_stdout_and_figures_folder(results, tmp_path, capsys):
    figures = tmp_path / "figs"
    assert main(["report", str(results), "--figures", str(figures)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# DeMa against Decision Transformer")
    assert len(list(figures.glob("*.png"))) == 4  # learning curves, loss curves, final scores, claims


def test_no_records_is_a_one_line_error(tmp_path):
    empty = tmp_path / "EMPTY_DIR"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "-m", "dema.cli", "report", str(empty)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(empty) in lines[0] and "no run records" in lines[0]


def test_reference_table_has_a_source_for_every_number():
    assert all(ref.source and ref.value for ref in REFERENCES)
    figures = {ref.figure for ref in REFERENCES}
    assert {"DT paper", "CORL DT final", "CORL DT best", "DT paper (Atari)"} <= figures
    assert len({(r.dataset, r.figure) for r in REFERENCES}) == len(REFERENCES)


def test_flattening_tells_a_flat_curve_from_a_rising_one():
    from dema.experiments.report import _late_loss_drop, _slope

    flat = [(s, 50.0 + (-1) ** (s // 500) * 3) for s in range(500, 5001, 500)]
    rising = [(s, s / 100) for s in range(500, 5001, 500)]
    slope, half = _slope([p for p in flat if p[0] > 2500])
    assert abs(slope) <= half  # the interval contains 0
    slope, half = _slope([p for p in rising if p[0] > 2500])
    assert slope == pytest.approx(10.0) and slope > half
    assert _late_loss_drop([(s, 1.0) for s in range(0, 5000, 250)]) == pytest.approx(0.0)
    assert _late_loss_drop([(s, 1.0 / (1 + s)) for s in range(0, 5000, 250)]) > 0.4


def test_flattening_summary_counts_the_groups_and_says_what_a_flat_slope_cannot_rule_out():
    from dema.experiments.report import flattening_summary
    from dema.experiments.report.document import _flattening_text

    def row(trend, width, drop):
        return {"score_trend": trend, "score_slope_ci95_half_width": width, "loss_drop_second_half": drop}

    rows = [row("flat", 10.0, 0.12), row("flat", 30.0, 0.02), row("flat", 50.0, 0.08), row(None, None, None)]
    s = flattening_summary(rows)
    assert (s["groups"], s["flat"], s["rising"], s["falling"]) == (4, 3, 0, 0)
    assert s["median_slope_half_width"] == 30.0
    assert (s["loss_still_falling"], s["loss_groups"]) == (2, 3) and s["median_loss_drop"] == pytest.approx(0.08)
    text = _flattening_text(s)
    assert "flat in 3 of 4 groups" in text and "±30.0 points" in text and "in 2 of 3 groups" in text
    assert "no trend the evaluations can resolve" in text
    s = flattening_summary([row("rising", 5.0, 0.2)])
    assert s["rising"] == 1 and "can resolve" not in _flattening_text(s)


def test_datasets_section_sets_the_data_returns_beside_the_scores(tmp_path, capsys):
    """A record's dataset returns (raw and normalised) reach the JSON and the markdown; a dataset whose
    records lack them says so instead of showing numbers."""
    recs = grid_records()
    for rec in recs:
        if rec["dataset"] == "hopper-medium":
            rec["dataset_identity"]["returns"] = {
                "return_mean": 1500.0, "return_std": 300.0, "return_min": 100.0, "return_max": 3000.0,
                "normalized_return_mean": 46.2, "normalized_return_std": 9.2,
                "normalized_return_min": 3.7, "normalized_return_max": 92.6}
    results = write(tmp_path / "results", recs)
    assert main(["report", str(results), "--json"]) == 0
    rows = {r["dataset"]: r for r in json.loads(capsys.readouterr().out)["datasets"]}
    assert rows["hopper-medium"]["returns"]["normalized_return_mean"] == 46.2
    assert rows["walker2d-medium"]["returns"] is None
    out = tmp_path / "REPORT.md"
    assert main(["report", str(results), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| hopper-medium | 100,000 | 1500.0 ± 300.0 | 46.2 ± 9.2 | 3.7 / 92.6 |" in text
    assert "| walker2d-medium | 100,000 | not recorded | - | - |" in text


def test_rewriting_an_unchanged_record_keeps_its_provenance(tmp_path):
    """A sweep passing over a finished cell writes its record again: the stamp of the session that
    recorded it stays; a record whose content changed is written with the new stamp."""
    from dema.experiments.records import write_record

    first = record("hopper-medium", "dema", 0, 50.0)
    first["provenance"]["recorded_by_commit"] = "a" * 40
    path = write_record(first, tmp_path)
    again = json.loads(json.dumps(first))
    again["provenance"].update(recorded_at="2026-12-01T00:00:00+00:00", recorded_by_commit="b" * 40)
    write_record(again, tmp_path)
    assert json.loads(path.read_text())["provenance"]["recorded_by_commit"] == "a" * 40

    again["normalized_mean"] = 51.0
    write_record(again, tmp_path)
    stored = json.loads(path.read_text())
    assert stored["normalized_mean"] == 51.0 and stored["provenance"]["recorded_by_commit"] == "b" * 40


def test_ms_per_update_is_the_median_of_the_log_intervals():
    """A pause of the machine inside one log interval must not make a run look 4x slower."""
    from dema.experiments.report import run_from_record

    rec = record("hopper-medium", "dema", 0, 50.0)
    rec["metrics"] = [{"step": 100 * (i + 1), "loss": 0.1, "ms_per_step": ms, "train_seconds": 0.0}
                      for i, ms in enumerate([200.0, 210.0, 47_000.0, 190.0, 205.0])]
    rec["eval"]["training"]["train_seconds"] = 4_780.5
    rec["eval"]["training"]["step"] = 500
    assert run_from_record(rec).ms_per_update == 205.0
    rec["metrics"] = []
    assert run_from_record(rec).ms_per_update == pytest.approx(9_561.0)  # no intervals: the total / steps


def test_protocol_table_names_the_kind_of_each_dataset_digest(tmp_path):
    """A digest of the file's bytes and a digest of the arrays of the same data differ; the table says
    which is which instead of showing two bare digests that read as two datasets."""
    by_file, by_arrays = record("hopper-medium", "dema", 0, 50.0), record("hopper-medium", "dt", 0, 40.0)
    by_file["dataset_identity"]["sha256_of"] = "file"
    by_arrays["dataset_identity"].update(sha256="cd" * 32, sha256_of="arrays")
    out = tmp_path / "REPORT.md"
    assert main(["report", str(write(tmp_path / "results", [by_file, by_arrays])), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| abababababab (file) |" in text and "| cdcdcdcdcdcd (arrays) |" in text


def test_the_report_says_what_ran_of_each_grid(tmp_path):
    """Coverage: the packaged grid `residual` plans dema-post on 3 datasets x 3 seeds; 4 cells have a
    record, one record names a run the grid does not plan, and a user's grid has no plan to compare to."""
    recs = []
    for dataset, seed in [("hopper-medium", 0), ("halfcheetah-medium", 0), ("walker2d-medium", 0), ("hopper-medium", 1)]:
        rec = record(dataset, "dema-post", seed, 50.0, grid="residual")
        rec["run"] = f"{dataset}_dema-post_cpu-main_s{seed}"  # the grid's cell name (Cell.name)
        recs.append(rec)
    stray = record("hopper-medium-replay", "dema-post", 0, 50.0, grid="residual")
    stray["run"] = "hopper-medium-replay_dema-post_cpu-main_s0"
    recs += [stray, record("hopper-medium", "dema", 0, 60.0, grid="my-grid")]
    report = build_report([write(tmp_path / "results", recs)])
    rows = {(r["grid"], r["model"]): r for r in report.to_json()["coverage"]["grids"]}
    residual = rows["residual", "dema-post"]
    assert (residual["planned"], residual["recorded"], residual["complete_seeds"]) == (9, 4, [0])
    assert residual["missing_labels"] == ["halfcheetah-medium s1", "walker2d-medium s1", "hopper-medium s2",
                                          "halfcheetah-medium s2", "walker2d-medium s2"]
    assert residual["missing"][0] == "halfcheetah-medium_dema-post_cpu-main_s1"
    assert residual["unplanned"] == ["hopper-medium-replay_dema-post_cpu-main_s0"]
    assert rows["my-grid", "dema"]["planned"] is None and rows["my-grid", "dema"]["recorded"] == 1
    not_run = report.coverage["not_run"]
    assert "official" in not_run and "residual" not in not_run and "tiny-check" not in not_run
    text = markdown(report, "dema report results", [], tmp_path)
    assert ("| residual | DeMa-post | 4 / 9 (+1 not in its grid file now) | 0 | halfcheetah-medium s1, walker2d-medium s1, "
            "hopper-medium s2, halfcheetah-medium s2, walker2d-medium s2 |") in text
    assert "| my-grid | DeMa | 1 (not a packaged grid) | - | - |" in text


def test_a_claim_never_pools_protocols(tmp_path):
    """A smoke run's records (protocol demo, 20 updates) beside the real ones: the claim is judged on the
    protocol with the most pairs and names the pairs it left out; the reference table says its protocol."""
    recs = grid_records()
    for seed in (0, 1):  # two short runs with DT far ahead
        for model, score in (("dema", 0.0), ("dt", 90.0)):
            short = record("hopper-medium", model, seed, score, updates=20)
            short["protocol"] = short["config"]["protocol"] = "demo"
            short["run"] = short["run"].replace("cpu-test", "demo")
            short["grid"] = "tiny-check"
            recs.append(short)
    report = build_report([write(tmp_path / "results", recs)])
    c = claim(report.to_json(), "DeMa beats DT on MuJoCo, at each")
    assert c["evidence"]["protocols"] == ["cpu-test"] and c["evidence"]["other_protocols"] == {"demo": 2}
    assert c["evidence"]["pairs"] == 6 and c["evidence"]["mean_difference"] == pytest.approx(20.0)
    text = markdown(report, "dema report", [], tmp_path)
    assert "left out: 2 pairs under demo" in text
    assert "| hopper-medium | cpu-test |" in text


def test_unreadable_and_foreign_files_are_problems_and_the_rest_is_reported(results, capsys):
    """Whatever lies among the records (bad bytes, non-UTF-8 text, JSON that is no record, JSON nested
    past Python's recursion limit) is one problem line each; the records beside it are all reported."""
    strays = {"bytes.json": b"\x00\xff\xfe\x9c garbage \x81",
              "latin1.json": '{"schema": 1, "run": "caf\u00e9"}'.encode("latin-1"),
              "list.json": b"[1, 2, 3]", "other-tool.json": b'{"name": "not ours", "epochs": 3}',
              "deep.json": b"[" * 200_000 + b"]" * 200_000}
    for name, data in strays.items():
        (results / "mujoco-test" / name).write_bytes(data)
    assert main(["report", str(results), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["runs"]) == 18
    assert sorted(Path(p.split(":")[0]).name for p in out["problems"]) == sorted(strays)
    assert any("not UTF-8" in p for p in out["problems"]) and any("a JSON list" in p for p in out["problems"])


@pytest.mark.parametrize("field, value", [
    ("model", "dt"), ("seed", 8), ("dataset", "walker2d-medium"), ("protocol", "cpu-main"), ("run", "renamed"),
    ("normalized_mean", 95.0), ("seed", "7"), ("config", ["not", "a", "dict"]), ("variant", "context_len-8"),
])
def test_a_record_whose_fields_contradict_each_other_is_a_problem_and_no_evidence(results, tmp_path, capsys, field, value):
    """A record edited by hand or pieced together from two runs says one thing in its fields and
    another in its config or evaluation (or has a field of the wrong type): it is named and left out,
    so the claims are those of the 18 sound records."""
    bad = record("hopper-medium", "dema", 7, 40.0)
    bad["config"]["run_name"] = bad["run"]
    bad[field] = value
    (results / "mujoco-test" / "edited.json").write_text(json.dumps(bad))
    assert main(["report", str(results), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["runs"]) == 18, field
    assert len(out["problems"]) == 1 and "edited.json" in out["problems"][0] and field in out["problems"][0]
    assert "dema sweep" in out["problems"][0]  # what to do about it
    assert claim(out, "DeMa beats DT on MuJoCo, at each")["evidence"]["mean_difference"] == pytest.approx(20.0)


def _run_directory(folder: Path, rec: dict) -> Path:
    """A finished run directory as `dema train` leaves it, with the files of `dema decay` and `dema
    surgery` in their subfolders."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(rec["config"]))
    (folder / "eval.json").write_text(json.dumps({**rec["eval"], "normalized_std": 3.0}))
    (folder / "normalization.json").write_text(json.dumps({"state_mean": [0.0], "state_std": [1.0]}))
    (folder / "identity.json").write_text(json.dumps({"run_id": "abc", "dataset": {**rec["dataset_identity"],
                                                                                  "returns": {}}}))
    (folder / "provenance.json").write_text(json.dumps({"sessions": [{"at": "now", "commit": None, "from_step": 0}]}))
    for sub, name in (("decay", "decay.json"), ("surgery", "surgery.json"), ("surgery", "eval.json")):
        (folder / sub).mkdir(exist_ok=True)
        (folder / sub / name).write_text(json.dumps({"layers": [1, 2]}))
    return folder


def test_run_directories_own_files_are_not_problems(tmp_path, capsys):
    """A run directory is read as one run, passed or found under a folder: its config.json,
    identity.json, provenance.json and its decay/ and surgery/ outputs are not records gone wrong; an
    unfinished run under a folder has no score yet and is passed over."""
    runs = tmp_path / "runs"
    for seed in SEEDS:
        for model, score in (("dema", 70.0), ("dt", 50.0)):
            _run_directory(runs / f"hopper-medium_{model}_s{seed}", record("hopper-medium", model, seed, score))
    unfinished = _run_directory(runs / "hopper-medium_dema_s9", record("hopper-medium", "dema", 9, 1.0))
    (unfinished / "eval.json").unlink()
    assert main(["report", str(runs), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["problems"] == [] and len(out["runs"]) == 6
    assert main(["report", str(runs / "hopper-medium_dema_s0"), str(runs / "hopper-medium_dt_s0"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["problems"] == [] and len(out["runs"]) == 2


def test_the_other_records_of_a_results_folder_are_not_problems(results, capsys):
    """results/analyses/, results/continued/ and results/diagnostics/ keep the records of other commands
    (analysis tables, `dema continue`, the Pong diagnostics): a report of the results folder passes them
    over; a stray file beside the run records is still a problem, and so is such a folder named itself."""
    others = {"analyses/hopper-medium_dema_cpu-main_s0/decay-episode.json": {"view": "episode", "layers": []},
              "analyses/hopper-medium_dema_cpu-main_s0/retrained.json": {"same_score": True},
              "continued/hopper-medium_dema_cpu-main_s0.json": {"schema": 1, "run": "x", "updates": [5000, 10000]},
              "diagnostics/pong/Pong_dema_cpu-atari_s0.json": {"normalized_mean": 0.5}}
    for name, content in others.items():
        (results / name).parent.mkdir(parents=True, exist_ok=True)
        (results / name).write_text(json.dumps(content))
    assert main(["report", str(results), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["problems"] == [] and len(out["runs"]) == 18
    (results / "mujoco-test" / "continued").mkdir()  # a grid's own subfolder of that name is searched
    (results / "mujoco-test" / "continued" / "stray.json").write_text("{}")
    assert main(["report", str(results), str(results / "analyses"), "--json"]) == 0
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert len(problems) == 3 and "stray.json" in problems[0] and all("analyses" in p for p in problems[1:])


def test_the_report_says_which_datasets_use_their_own_reference_scores(tmp_path):
    """eval.json's reference_scores.source (issue 26): a Minari dataset normalised with its own reference
    scores is named in the report; records without the field (every run before it) are the table's."""
    recs = grid_records()
    for rec in recs:
        if rec["dataset"] == "hopper-medium":
            rec["eval"]["reference_scores"] = {"min": -20.0, "max": 3000.0, "source": "dataset"}
    out = tmp_path / "REPORT.md"
    assert main(["report", str(write(tmp_path / "results", recs)), "--out", str(out)]) == 0
    assert "- Normalisation: `hopper-medium` with the dataset's own reference scores" in out.read_text()
    out_table = tmp_path / "TABLE.md"
    assert main(["report", str(write(tmp_path / "table", grid_records())), "--out", str(out_table)]) == 0
    assert "Normalisation:" not in out_table.read_text()


def _analysis_cell(results: Path, dataset: str, seed: int, intact: float, zeroed: float, r2_exp: float,
                   r2_power: float, model: str = "dema") -> Path:
    """results/analyses/<cell>/ as scripts/analysis_runs.sh fills it, cut to what the claims read."""
    cell = results / "analyses" / f"{dataset}_{model}_cpu-test_s{seed}"
    cell.mkdir(parents=True)
    manipulations = [{"kind": "zero", "layer": "all", "with": None, "normalized_mean": zeroed},
                     {"kind": "zero", "layer": 0, "with": None, "normalized_mean": intact},
                     {"kind": "swap", "layer": "all", "with": None, "normalized_mean": zeroed + 1.0}]
    (cell / "surgery.json").write_text(json.dumps({"intact": intact, "manipulations": manipulations}))
    fit = lambda: {"exponential": {"r2_log": r2_exp}, "power_law": {"r2_log": r2_power},
                   "better": "exponential" if r2_exp > r2_power else "power law"}
    (cell / "decay.json").write_text(json.dumps({"view": "window", "layers": [
        {"layer": i, "fit_all": fit()} for i in range(3)] + [{"layer": 3, "fit_all": None}]}))
    return cell


def test_the_hidden_attention_claims_read_the_analyses_records(results, capsys):
    """Claim 3 from results/analyses/: zeroing the attention costs 30-50 points on every cell
    (supported), the power law fits better everywhere (the exponential claim: not supported); an
    RNN-like cell's records and a damaged one are not evidence (the damaged one a problem); with no
    analyses both claims are "no data" saying how to make the records."""
    before = build_report([results]).to_json()
    for start in ("The hidden attention is what matters", "The hidden attention decays exponentially"):
        c = claim(before, start)
        assert c["verdict"] == "no data" and "scripts/analysis_runs.sh" in c["evidence"]["would_change"]
    for i, dataset in enumerate(DATASETS):
        for seed in SEEDS:
            _analysis_cell(results, dataset, seed, 70.0 + seed, 30.0 - 10 * i, 0.85 + 0.01 * seed, 0.97)
    _analysis_cell(results, "hopper-medium", 0, 10.0, 90.0, 0.99, 0.5, model="dema-rnn")  # not Transformer-like
    damaged = _analysis_cell(results, "walker2d-medium", 7, 70.0, 10.0, 0.9, 0.8)
    (damaged / "surgery.json").write_text(json.dumps({"intact": 70.0, "manipulations": []}))
    report = build_report([results])
    out = report.to_json()
    matters = claim(out, "The hidden attention is what matters")
    assert matters["verdict"] == "supported" and matters["evidence"]["pairs"] == 6
    assert matters["evidence"]["mean_difference"] == pytest.approx(statistics.mean([41.0, 51.0]))
    assert matters["evidence"]["detail"] == "mean change of the score with the other manipulations: cyclic swap -45.0"
    decays = claim(out, "The hidden attention decays exponentially")
    assert decays["verdict"] == "not supported" and decays["evidence"]["pairs"] == 7  # the damaged cell's decay reads
    assert "AIC favours the power law in 18 of 21 layers" in decays["evidence"]["detail"]
    assert [p for p in out["problems"] if "surgery.json" in p] == [
        f"{damaged / 'surgery.json'}: not the JSON `dema surgery` writes (KeyError: \"no manipulation 'zero' of "
        "every layer ('all')\"); write it again with scripts/analysis_runs.sh (delete the file first)"]
    names = [c["claim"] for c in out["claims"]]
    assert names.index(matters["claim"]) < names.index(next(n for n in names if n.startswith("Extension")))
    page = markdown(report, "dema report results", [], results)
    assert "of the paper's 15 claims" in page
    figures = write_figures(report.runs, results.parent / "figures", report.claims)
    assert results.parent / "figures" / "claims.png" in figures
