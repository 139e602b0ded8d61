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
    # a dataset no preset of the paper names takes its environment's defaults (issue 26) ...
    assert find_preset("hopper-sac-replay.hdf5") == "hopper-default"
    # ... and one whose name names no environment either is refused, naming --preset
    with pytest.raises(ConfigError, match="--preset"):
        find_preset("sac-replay.hdf5")


@pytest.mark.parametrize("form, value", [(["--{}"], True), (["--no-{}"], False), (["--{}", "True"], True),
                                         (["--{}", "False"], False), (["--{}=True"], True), (["--{}", "false"], False)])
def test_booleans_parse_every_form(form, value):
    """--x sets, --no-x clears, and the old form --x True / --x False (documented before) still works."""
    argv = [word.format(name) for name in ("overwrite", "data.delayed", "progress", "model.mask-padding")
            for word in form]
    config, resume = parse(["--model", "dt", "--dataset", "hopper-medium", *argv])
    assert (config.overwrite, config.data.delayed, config.progress, config.model.mask_padding) == (value,) * 4
    assert not resume


def test_the_config_is_the_preset_with_exactly_the_given_fields():
    """What config.json gets: the preset, with the options' fields replaced and nothing else."""
    config, _ = parse(["--model", "dema-rnn", "--dataset", "walker2d-medium", "--protocol", "cpu-short",
                       "--optim.lr", "3e-4", "--model.n-layer", "2", "--model.block", "mamba-post-up",
                       "--eval.targets", "3600", "1800", "--eval.seeds", "0", "1", "--optim.betas", "0.9", "0.95",
                       "--no-progress", "--data.delayed", "--run-name", "x", "--threads", "0"])
    preset = preset_config("dema-rnn", "walker2d-medium", "cpu-short")
    expected = preset.to_dict()
    expected["model"].update(n_layer=2, block="mamba-post-up")
    expected["optim"].update(lr=3e-4, betas=(0.9, 0.95))
    expected["eval"].update(targets=(3600.0, 1800.0), seeds=(0, 1))
    expected["data"]["delayed"] = True
    expected.update(progress=False, run_name="x", threads=0)
    assert config.to_dict() == expected
    assert json.dumps(config.to_dict()) == json.dumps(expected)  # the same JSON text: floats stay floats


@pytest.mark.parametrize("old, new", [
    (["--overwrite", "True", "--progress", "False"], ["--overwrite", "--no-progress"]),
    (["--model.n_layer", "2", "--runs_dir", "r", "--eval.at_end", "False"],  # tyro read underscores too
     ["--model.n-layer", "2", "--runs-dir", "r", "--no-eval.at-end"]),
    (["--model.block", "ATTENTION", "--model.token-order", "RETURN_STATE_ACTION"],  # tyro took enum names
     ["--model.block", "attention", "--model.token-order", "r-s-a"]),
    (["--eval.targets", "--eval.seeds", "4"], ["--eval.seeds", "4"]),  # an empty list: no targets
])
def test_spellings_that_worked_before_give_the_same_config(old, new, tmp_path):
    for argv in (old, new):
        parse(["--model", "dt", *argv])[0].save(tmp_path / f"{argv is new}.json")
    assert (tmp_path / "True.json").read_bytes() == (tmp_path / "False.json").read_bytes()


@pytest.mark.parametrize("argv", [["--data.delayed", "no"], ["--overwrite", "1"], ["--overwrite=maybe"],
                                  ["--no-overwrite", "True"], ["--optim.lr", "abc"], ["--optim.betas", "0.9"],
                                  ["--model.block", "transformer"], ["--no-such-option", "1"], ["--ov", "True"]])
def test_bad_values_and_unknown_options_are_one_line(argv, capsys):
    # argparse's type=bool would read any non-empty string, "no" included, as True; abbreviations are refused.
    with pytest.raises(SystemExit) as exc:
        parse(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and err.startswith("dema train: error: "), err


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
    resumed, _ = parse(["--resume", str(run_dir), "--no-progress", "--tensorboard", "--no-data.delayed"])
    assert (resumed.progress, resumed.tensorboard, resumed.data.delayed) == (False, True, False)
    with pytest.raises(ConfigError, match="data"):
        parse(["--resume", str(run_dir), "--data.delayed", "True"])
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["schedule"]["updates"] == 100_000  # parsing alone writes nothing
