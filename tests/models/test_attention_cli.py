import json

import h5py
import numpy as np

from dema.cli import main


def _tiny_d4rl(path, episodes=3, length=40, obs_dim=11, act_dim=3):
    rng = np.random.default_rng(0)
    n = episodes * length
    timeouts = np.zeros(n, bool)
    timeouts[length - 1 :: length] = True
    with h5py.File(path, "w") as f:
        f["observations"] = rng.normal(size=(n, obs_dim)).astype(np.float32)
        f["actions"] = rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32)
        f["rewards"] = rng.uniform(0, 3, size=n).astype(np.float32)
        f["terminals"] = np.zeros(n, bool)
        f["timeouts"] = timeouts


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
