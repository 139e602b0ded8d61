"""Config round trips, presets, protocols and command-line parsing (booleans, unknown keys)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from dema.errors import ConfigError
from dema.models import ModelConfig
from dema.train.cli import parse
from dema.run.config import (TrainConfig, available_presets, available_protocols, find_preset,
                               preset_config)

PAPER_LR = {"hopper-medium": 1e-4, "hopper-medium-replay": 1e-4, "walker2d-medium": 1e-4,
            "halfcheetah-medium": 1e-3, "halfcheetah-medium-replay": 1e-3, "halfcheetah-medium-expert": 1e-3,
            "hopper-medium-expert": 1e-3, "walker2d-medium-replay": 1e-3, "walker2d-medium-expert": 1e-3}


def test_round_trip_through_json(tmp_path):
    config = preset_config("dt", "walker2d-medium", "cpu-short")
    config = dataclasses.replace(config, seed=3, eval=dataclasses.replace(config.eval, targets=(5000.0, 2500.0)))
    config.save(tmp_path / "config.json")
    loaded = TrainConfig.load(tmp_path / "config.json")
    assert loaded == config
    assert isinstance(loaded.model, ModelConfig) and loaded.eval.targets == (5000.0, 2500.0)


def test_unknown_keys_are_errors():
    data = preset_config("dema", "hopper-medium").to_dict()
    data["optim"]["learning_rate"] = 1.0
    with pytest.raises(ConfigError, match="learning_rate"):
        TrainConfig.from_dict(data)


@pytest.mark.parametrize("dataset", sorted(PAPER_LR))
def test_presets_hold_the_paper_hyper_parameters(dataset):
    config = preset_config("dema", dataset)
    assert config.optim.lr == PAPER_LR[dataset]
    assert (config.optim.weight_decay, config.optim.warmup_steps, config.optim.grad_clip) == (1e-4, 10_000, 0.25)
    assert (config.optim.batch_size, config.model.context_len, config.model.n_layer) == (64, 20, 3)
    assert (config.schedule.updates, config.data.reward_scale, config.eval.episodes) == (100_000, 1000.0, 100)
    assert config.protocol == "paper"


@pytest.mark.parametrize("dataset", sorted(PAPER_LR))
def test_dt_dc_and_bc_take_dt_s_own_learning_rate_on_every_mujoco_dataset(dataset):
    """The paper's DT baseline is DT's own: its gym code trains at 1e-4 on all nine datasets, where
    DeMa's rate is 1e-3 on six of them. DeMa's variants keep DeMa's rate."""
    for model in ("dt", "dt-shared", "dt-official", "dc", "bc"):
        assert preset_config(model, dataset).optim.lr == 1e-4, model
    for model in ("dema", "dema-bl3d", "dema-post", "dema-rnn", "dema-official"):
        assert preset_config(model, dataset).optim.lr == PAPER_LR[dataset], model


def test_cpu_short_protocol_is_named_and_recorded():
    paper, short = preset_config("dt", "hopper-medium"), preset_config("dt", "hopper-medium", "cpu-short")
    assert short.protocol == "cpu-short" and "cpu-short" in short.run_dir().name
    assert short.schedule.updates < paper.schedule.updates and short.eval.episodes < paper.eval.episodes
    assert short.optim.lr == paper.optim.lr and short.model == paper.model  # the rest is the paper's
    assert {"paper", "cpu-short", "demo"} <= set(available_protocols())
    with pytest.raises(ConfigError, match="unknown protocol"):
        preset_config("dt", "hopper-medium", "fast")


def test_preset_lookup_from_ids_and_files():
    assert find_preset("hopper-medium-v5") == "hopper-medium"
    assert find_preset("datasets/hopper-medium-replay-v5.hdf5") == "hopper-medium-replay"
    assert find_preset("hopper-medium-replay-small") == "hopper-medium-replay"
    mujoco = {f"{env}-{level}" for env in ("hopper", "halfcheetah", "walker2d")
              for level in ("medium", "medium-replay", "medium-expert")}
    assert mujoco | {"maze2d-umaze", "maze2d-medium", "maze2d-large"} <= set(available_presets())
    with pytest.raises(ConfigError, match="--preset"):
        find_preset("hopper-sac-replay.hdf5")


@pytest.mark.parametrize("text, value", [("False", False), ("True", True)])
def test_booleans_parse_their_value(text, value):
    config, resume = parse(["--model", "dt", "--dataset", "hopper-medium", "--data.delayed", text,
                            "--overwrite", text])
    assert config.data.delayed is value and config.overwrite is value and not resume


def test_ambiguous_boolean_words_are_refused():
    # argparse's type=bool would read any non-empty string, "no" included, as True.
    with pytest.raises(SystemExit) as exc:
        parse(["--data.delayed", "no"])
    assert exc.value.code == 2


def test_overrides_and_unknown_options():
    config, _ = parse(["--model", "dema", "--dataset", "halfcheetah-medium", "--protocol", "cpu-short",
                       "--optim.lr", "3e-4", "--model.n-layer", "2", "--eval.seeds", "0", "1", "2", "--seed", "7"])
    assert (config.optim.lr, config.model.n_layer, config.eval.seeds, config.seed) == (3e-4, 2, (0, 1, 2), 7)
    assert config.model.embed_dim == 128 and config.protocol == "cpu-short"
    with pytest.raises(SystemExit) as exc:
        parse(["--model", "dema", "--optim.learning-rate", "1"])
    assert exc.value.code == 2
    with pytest.raises(ConfigError, match="unknown model"):
        parse(["--model", "gpt"])


def test_resume_refuses_changes_that_break_exactness(tmp_path):
    config = dataclasses.replace(preset_config("dema", "hopper-medium"), runs_dir=str(tmp_path))
    run_dir = config.run_dir()
    run_dir.mkdir(parents=True)
    config.save(run_dir / "config.json")
    resumed, resume = parse(["--resume", str(run_dir), "--schedule.updates", "5"])
    assert resume and resumed.schedule.updates == 5 and resumed.run_dir() == run_dir
    with pytest.raises(ConfigError, match="optim"):
        parse(["--resume", str(run_dir), "--optim.lr", "1"])
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["schedule"]["updates"] == 100_000  # parsing alone writes nothing
