"""Class 2, silent training on other data: a run records its dataset's identity and refuses to
resume on other data, on another --model or --dataset, or from a train_state.pt of another run."""

from __future__ import annotations

import json
import shutil

import pytest

from corpus import copy_run, dema, hopper_arrays, one_error_line, snapshot, tiny_run, write_d4rl


def test_the_run_records_its_dataset_and_refuses_other_data(tmp_path, capsys):
    dataset = write_d4rl(tmp_path / "hopper-medium-mine.hdf5", hopper_arrays((30, 20, 25)))
    run = tiny_run(capsys, dataset, tmp_path / "runs")
    identity = json.loads((run / "identity.json").read_text())
    recorded = identity["dataset"]
    assert recorded["path"] == str(dataset.resolve()) and recorded["bytes"] == dataset.stat().st_size
    assert recorded["transitions"] == 75 and recorded["episodes"] == 3 and len(recorded["sha256"]) == 64
    assert len(identity["run_id"]) == 32
    # and its episodes' returns, raw and D4RL-normalised (Hopper: -20.272305 / 3234.3), for the report
    import numpy as np
    arrays = hopper_arrays((30, 20, 25))
    raw = [float(np.sum(arrays["rewards"][a:b])) for a, b in ((0, 30), (30, 50), (50, 75))]
    returns = recorded["returns"]
    assert returns["return_mean"] == pytest.approx(np.mean(raw)) and returns["return_max"] == pytest.approx(max(raw))
    assert returns["normalized_return_mean"] == pytest.approx(100 * (np.mean(raw) + 20.272305) / (3234.3 + 20.272305))

    # The file is replaced by other data under the same name: resuming is refused, the run untouched.
    write_d4rl(dataset, hopper_arrays((30, 20, 25), seed=1))
    before = snapshot(run)
    code, _, err = dema(capsys, "train", "--resume", run, "--schedule.updates", "6")
    line = one_error_line(err)
    assert code == 2 and "not the data this run was trained on" in line and "75 transitions" in line
    assert snapshot(run) == before

    # The original data back (written again: another file, the same arrays) resumes.
    write_d4rl(dataset, hopper_arrays((30, 20, 25)))
    code, out, err = dema(capsys, "train", "--resume", run, "--schedule.updates", "6")
    assert code == 0, err
    assert "resumed at step 4" in out


def test_resume_refuses_another_model_or_dataset(finished_run, tiny_dataset, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "runs" / "done")
    before = snapshot(run)
    for option, value in (("--model", "dema"), ("--dataset", tmp_path / "hopper-medium-other.hdf5"),
                          ("--protocol", "cpu-short")):
        code, _, err = dema(capsys, "train", "--resume", run, option, value)
        line = one_error_line(err)
        assert code == 2 and f"made with {option}" in line, line
    assert snapshot(run) == before
    # Repeating the run's own choice is fine (here: the same dataset; the run is finished, so it only evaluates).
    code, _, err = dema(capsys, "train", "--resume", run, "--model", "dt", "--dataset", tiny_dataset)
    assert code == 0, err


def test_a_train_state_copied_from_another_run_is_detected(finished_run, tmp_path, capsys):
    runs = tmp_path / "runs"
    mine = copy_run(finished_run, runs / "mine")
    other = tiny_run(capsys, json.loads((mine / "config.json").read_text())["data"]["dataset"], runs, "other",
                     "--seed", "3")
    shutil.copy(other / "train_state.pt", mine / "train_state.pt")
    code, _, err = dema(capsys, "train", "--resume", mine, "--schedule.updates", "6")
    line = one_error_line(err)
    assert code == 2 and "belongs to another run" in line and "train_state.pt" in line


def test_a_record_of_an_older_run_reads_the_returns_from_its_data(finished_run, tmp_path):
    """Runs started before identity.json carried the data's returns get them in their record by reading
    the data again; without the data on the machine the record simply lacks them."""
    from dema.experiments.records import record_from_run

    run = copy_run(finished_run, tmp_path / "runs" / "old")
    identity = json.loads((run / "identity.json").read_text())
    expected = identity["dataset"].pop("returns")
    (run / "identity.json").write_text(json.dumps(identity))
    assert record_from_run(run)["dataset_identity"]["returns"] == pytest.approx(expected)

    shutil.move(run / "identity.json", tmp_path / "identity.json")  # as old as it gets: no identity at all
    for name, key in (("normalization.json", "dataset_source"), ("config.json", None)):
        data = json.loads((run / name).read_text())
        if key:
            data[key] = str(tmp_path / "gone.hdf5")
        else:
            data["data"]["dataset"] = str(tmp_path / "gone.hdf5")
        (run / name).write_text(json.dumps(data))
    assert "returns" not in record_from_run(run)["dataset_identity"]
