"""The training loop: exact resume after an interruption, the NaN guard, the run directory."""

from __future__ import annotations

import csv
import dataclasses

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from dema.errors import ConfigError
from dema.data import streams
from dema.train.loop import TrainingDiverged, train

from train_helpers import tiny_config


def _weights(run_dir, name="model.safetensors"):
    return load_file(str(run_dir / name))


def _assert_identical(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _quiet(*_):
    pass


# dt has dropout (the torch RNG must be restored), dema-rnn trains on whole trajectories with
# several updates per batch (the batch stream's position must be restored mid-epoch).
@pytest.mark.parametrize("model, extra", [("dema", {}), ("dt", {}), ("dema-rnn", {"updates_per_batch": 3})])
def test_resume_after_a_kill_ends_with_identical_weights(tiny_dataset, tmp_path, monkeypatch, model, extra):
    config = tiny_config(tiny_dataset, tmp_path / "a", model, updates=7, checkpoint_every=2)
    config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, batch_size=2, **extra))
    straight = train(config, log=_quiet)
    assert straight.step == 7

    # The interrupted run is killed during update 6: the last checkpoint is step 4, so updates 5
    # and 6 (and their metrics rows) are redone after the resume.
    killed = dataclasses.replace(config, runs_dir=str(tmp_path / "b"))
    calls = {"n": 0}
    original = streams.WindowStream.next if not killed.model.recurrent else streams.TrajectoryStream.next

    def dies_at_update_6(self):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(streams.TrajectoryStream if killed.model.recurrent else streams.WindowStream, "next",
                        dies_at_update_6)
    with pytest.raises(KeyboardInterrupt):
        train(killed, log=_quiet)
    monkeypatch.undo()
    assert torch.load(killed.run_dir() / "train_state.pt", weights_only=True)["step"] == 4
    # a fresh process would start from scratch: scramble the global RNGs the resume must restore
    torch.manual_seed(12345)
    resumed = train(killed, resume=True, log=_quiet)
    assert resumed.step == 7
    _assert_identical(_weights(straight.run_dir), _weights(resumed.run_dir))
    with (resumed.run_dir / "metrics.csv").open() as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [2, 4, 6, 7]


def test_resume_from_an_early_stop_matches(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "a", "dema", updates=6, checkpoint_every=100)
    a = train(config, log=_quiet)
    b_config = dataclasses.replace(config, runs_dir=str(tmp_path / "b"))
    half = train(b_config, stop_at=3, log=_quiet)  # a checkpoint is written at the stop
    assert half.step == 3
    b = train(b_config, resume=True, log=_quiet)
    _assert_identical(_weights(a.run_dir), _weights(b.run_dir))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    config = tiny_config(tiny_dataset, tmp_path, "dema", updates=8, checkpoint_every=2)
    import dema.models

    build_policy = dema.models.build_policy
    calls = {"n": 0}

    def build(*args, **kwargs):
        policy = build_policy(*args, **kwargs)
        real_loss = policy.loss

        def loss(batch):
            calls["n"] += 1
            value = real_loss(batch)
            return value * float("nan") if calls["n"] == 5 else value

        policy.loss = loss
        return policy

    monkeypatch.setattr("dema.models.build_policy", build)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at update 5.*last good checkpoint \(step 4\)"):
        train(config, log=_quiet)
    run_dir = config.run_dir()
    assert torch.load(run_dir / "train_state.pt", weights_only=True)["step"] == 4
    with safe_open(str(run_dir / "model.safetensors"), framework="pt") as f:
        assert f.metadata()["step"] == "4"
    assert all(torch.isfinite(t).all() for t in _weights(run_dir).values())


def test_nan_gradient_stops(tiny_dataset, tmp_path, monkeypatch):
    config = tiny_config(tiny_dataset, tmp_path, "dt", updates=4)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: torch.tensor(float("inf")))
    with pytest.raises(TrainingDiverged, match="gradient norm is inf at update 1.*no checkpoint"):
        train(config, log=_quiet)


def test_existing_run_directory_is_not_overwritten(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path, "bc", updates=2)
    first = train(config, log=_quiet)
    with pytest.raises(ConfigError, match="--resume"):
        train(config, log=_quiet)
    again = train(dataclasses.replace(config, overwrite=True), log=_quiet)
    assert again.run_dir == first.run_dir and again.step == 2


def test_run_directory_has_what_evaluation_needs(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path, "dema", updates=2)
    run_dir = train(config, log=_quiet).run_dir
    assert run_dir.name == "hopper-medium-tiny_dema_paper_s0"
    for name in ("config.json", "normalization.json", "model.safetensors", "train_state.pt", "metrics.csv"):
        assert (run_dir / name).is_file(), name


def test_every_parameter_changes_after_updates(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path, "dema", updates=2)
    config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, warmup_steps=1))
    from dema.models import build_policy

    torch.manual_seed(config.seed)
    initial = {k: v.clone() for k, v in build_policy(config.model, 11, 3).state_dict().items()}
    trained = _weights(train(config, log=_quiet).run_dir)
    unchanged = [k for k in initial if torch.equal(initial[k], trained[k])]
    assert not unchanged, unchanged


def test_tensorboard_is_opt_in(tiny_dataset, tmp_path):
    config = dataclasses.replace(tiny_config(tiny_dataset, tmp_path, "bc", updates=2), tensorboard=True)
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pip install tensorboard"):
            train(config, log=_quiet)
        return
    run_dir = train(config, log=_quiet).run_dir
    assert any((run_dir / "tb").iterdir())
