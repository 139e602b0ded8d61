import json
import sys
from pathlib import Path

from dema.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))  # the tests' one tiny-D4RL writer
from data_factories import make_arrays, write_d4rl  # noqa: E402


def _tiny_d4rl(path, episodes=3, length=40):
    """Hopper-shaped episodes of `length` steps, each cut by a timeout (the tests' one writer)."""
    return write_d4rl(path, make_arrays((length,) * episodes, obs_dim=11, act_dim=3, ends=["timeout"] * episodes))


def test_attention_command_writes_plot_and_decay(tmp_path, capsys):
    data = tmp_path / "hopper-tiny.hdf5"
    _tiny_d4rl(data)
    out = tmp_path / "att"
    code = main(["attention", "--model", "dema", "--dataset", str(data), "--preset", "hopper-medium",
                 "--episode", "1", "--step", "30", "--episode-steps", "40", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "attention.json").read_text())
    assert (out / "attention.png").stat().st_size > 10_000
    assert len(report["decay_slope_log10_per_token"]) == 3
    assert len(report["last_row_mean_abs"][0]) == 3 * 40  # B3LD: three tokens per step


def test_attention_command_rejects_a_bad_episode(tmp_path, capsys):
    data = tmp_path / "hopper-tiny.hdf5"
    _tiny_d4rl(data)
    code = main(["attention", "--model", "dema", "--dataset", str(data), "--preset", "hopper-medium",
                 "--episode", "99", "--out", str(tmp_path / "att")])
    assert code == 2
    assert "out of range" in capsys.readouterr().err


def test_attention_of_a_model_without_a_selective_scan_is_one_line(tmp_path, capsys):
    data = tmp_path / "hopper-tiny.hdf5"
    _tiny_d4rl(data)
    code = main(["attention", "--model", "dt", "--dataset", str(data), "--preset", "hopper-medium",
                 "--out", str(tmp_path / "att")])
    err = capsys.readouterr().err
    assert code == 2 and "no hidden attention" in err and "Traceback" not in err
    assert not (tmp_path / "att").exists()
