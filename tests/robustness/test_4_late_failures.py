"""Class 4, late failures: what can be known before the work starts is checked before it starts.

A dataset whose sizes do not fit the environment its name gives is refused by `dema data` and by
`dema train` before the first update (before the run directory even exists); `dema collect` checks
its output up front, writes each part as it is collected, and on a full disk stops with a clear
error, keeping what it had written."""

from __future__ import annotations

import errno

import h5py
import pytest

from corpus import dema, hopper_arrays, one_error_line, train_argv, write_d4rl


@pytest.mark.parametrize("change, expected", [
    ({"observations": lambda o: o[:, :8]}, "observations have 8 features but Hopper-v5"),
    ({"actions": lambda a: a[:, :2]}, "actions have 2 dimensions but Hopper-v5"),
])
def test_a_dataset_that_does_not_fit_its_environment_is_refused_up_front(tmp_path, capsys, change, expected):
    dataset = write_d4rl(tmp_path / "hopper-medium-misfit.hdf5", hopper_arrays(**change))  # no env in its metadata
    code, _, err = dema(capsys, "data", dataset)
    assert code == 2 and expected in one_error_line(err) and "file name" in err
    code, _, err = dema(capsys, *train_argv(dataset, tmp_path / "runs"))
    assert code == 2 and expected in one_error_line(err)
    assert not (tmp_path / "runs" / "run").exists()  # refused before anything was written


def test_collect_checks_its_output_before_collecting(tmp_path, capsys, monkeypatch):
    import dema.data.collect.collector as collector

    monkeypatch.setattr(collector, "rollout", lambda *a, **k: pytest.fail("collected before checking the output"))
    (tmp_path / "a-file").write_text("not a folder")
    for out, problem in ((tmp_path / "a-file" / "hopper.hdf5", "cannot write in"), (tmp_path, "is a folder")):
        code, _, err = dema(capsys, "collect", "hopper", "random", "--steps", "50", "--out", out, "--no-progress")
        assert code == 2 and problem in one_error_line(err)


def test_collect_stops_on_a_full_disk_and_keeps_what_it_wrote(tmp_path, capsys, monkeypatch):
    """medium-replay collects six stages; the disk fills while the second is written."""
    from dema.data.load import load_dataset

    resize = h5py.Dataset.resize

    def full_disk(self, size, axis=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(h5py.Dataset, "resize", full_disk)
    out = tmp_path / "hopper-medium-replay.hdf5"
    code, _, err = dema(capsys, "collect", "hopper", "medium-replay", "--steps", "120", "--num-envs", "2",
                        "--out", out, "--no-progress")
    monkeypatch.setattr(h5py.Dataset, "resize", resize)
    line = one_error_line(err)
    partial = tmp_path / "hopper-medium-replay.partial.hdf5"
    assert code == 2 and "No space left on device" in line and f"kept in {partial}" in line, line
    assert not out.exists()
    kept = load_dataset(partial)  # a valid D4RL file of the first stage: 10% of 120 steps, every episode ended
    assert len(kept) == 12 and kept.env_name == "Hopper-v5"
    code, _, err = dema(capsys, "collect", "hopper", "random", "--steps", "30", "--out", out, "--no-progress")
    assert code == 2 and "earlier, stopped collection" in one_error_line(err)  # what was kept is not overwritten

    # Too little free space is seen before the write (no failure inside the HDF5 library).
    import dema.data.collect.writer as writer

    monkeypatch.setattr(writer.shutil, "disk_usage", lambda path: type("U", (), {"free": 1024})())
    code, _, err = dema(capsys, "collect", "hopper", "random", "--steps", "30", "--out", tmp_path / "r.hdf5",
                        "--no-progress")
    assert code == 2 and "MiB free there" in one_error_line(err) and not (tmp_path / "r.hdf5").exists()
