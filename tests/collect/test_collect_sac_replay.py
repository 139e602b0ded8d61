"""sac-replay on a tiny budget: the buffer becomes a D4RL file, and an interrupted run resumes."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

pytest.importorskip("stable_baselines3", reason="stable-baselines3 not installed (pip install 'dema[sac]')")

from dema.data.collect import sac_replay  # noqa: E402
from dema.envs import env_spec  # noqa: E402


def test_interrupted_run_resumes_and_keeps_the_whole_buffer(tmp_path, monkeypatch):
    out = tmp_path / "hopper-sac-replay.hdf5"
    kwargs = dict(spec=env_spec("hopper"), out=out, seed=0, budget=300, progress=False,
                  learning_starts=50, eval_every=100, eval_episodes=1)
    real_evaluate = sac_replay._evaluate
    calls = {"n": 0}

    def interrupted_evaluate(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # Ctrl-C during the second evaluation, after one checkpoint
        return real_evaluate(*args, **kw)

    monkeypatch.setattr(sac_replay, "_evaluate", interrupted_evaluate)
    with pytest.raises(KeyboardInterrupt):
        sac_replay.collect_sac_replay(**kwargs)
    work = tmp_path / "hopper-sac-replay.hdf5.work"
    state = json.loads((work / "state.json").read_text())
    assert state["steps"] == 100 and not out.exists()

    monkeypatch.setattr(sac_replay, "_evaluate", real_evaluate)
    path, meta = sac_replay.collect_sac_replay(**kwargs)
    assert path == out and not work.exists()
    with h5py.File(out) as f:
        data = {k: f[k][()] for k in f if k != "metadata"}
        attrs = dict(f["metadata"].attrs)
    assert len(data["rewards"]) == 300 and data["observations"].shape == (300, 11)
    # The episode running at the interruption is cut at step 100; the file's last one too.
    assert data["terminals"][99] or data["timeouts"][99]
    assert data["terminals"][-1] or data["timeouts"][-1]
    assert not (data["terminals"] & data["timeouts"]).any()
    ends = data["terminals"] | data["timeouts"]
    inner = np.flatnonzero(~ends)
    np.testing.assert_array_equal(data["next_observations"][inner], data["observations"][inner + 1])
    assert [step for step, _ in json.loads(attrs["eval"])] == [100, 200, 300]
    assert attrs["interruptions"] == 1 and attrs["recipe"] == "sac-replay"
    assert "BELOW" in attrs["stopped"]  # 300 steps of SAC do not reach the medium level
