"""One command style (issue 28): every `dema` command parses its options through dema.cli_options,
with one boolean convention (`--x`, `--no-x`, and the old `--x True` / `--x False`), one-line errors,
and `--help` naming the real models and protocols."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from pathlib import Path

import pytest

from dema.cli import COMMANDS, main
from dema.cli_options import CommandParser
from dema.models import MODELS
from dema.run.config import TrainConfig, available_protocols

SRC = Path(__file__).resolve().parents[2] / "src" / "dema"


@pytest.fixture
def parsers(monkeypatch):
    """Every parser that parses a command line while the test runs."""
    seen: list[argparse.ArgumentParser] = []
    parse = argparse.ArgumentParser.parse_known_args

    def recording(self, *args, **kwargs):
        seen.append(self)
        return parse(self, *args, **kwargs)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", recording)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # `dema collect` sets them
        monkeypatch.setenv(var, "1")
    return seen


def _help(capsys, *argv) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(list(argv))
    assert stop.value.code == 0
    return capsys.readouterr().out


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return {name: sub for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name, sub in action.choices.items()}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_parses_through_the_shared_parser(command, parsers, capsys):
    text = _help(capsys, command, "--help")
    assert parsers and all(isinstance(p, CommandParser) for p in parsers), [type(p) for p in parsers]
    assert text.startswith(f"usage: dema {command}")
    for name, sub in _subcommands(parsers[-1]).items():
        assert isinstance(sub, CommandParser) and not sub.allow_abbrev
        assert _help(capsys, command, name, "--help").startswith(f"usage: dema {command} {name}")


def test_no_command_builds_a_parser_of_its_own():
    """The static side of the test above: argparse's parser and store_true appear only in cli_options."""
    for path in SRC.rglob("*.py"):
        if path.name == "cli_options.py":
            continue
        text = path.read_text()
        for word in ("ArgumentParser(", '"store_true"', '"store_false"', "BooleanOptionalAction", "import tyro"):
            assert word not in text, f"{path.relative_to(SRC)} uses {word}; build parsers with dema.cli_options"


@pytest.mark.parametrize("form, value", [(["--{}"], True), (["--no-{}"], False), (["--{}", "True"], True),
                                         (["--{}", "False"], False), (["--{}=false"], False)])
def test_a_boolean_of_another_command_reads_every_form(form, value):
    """`dema collect` has positionals: a flag before them must not swallow one as its value."""
    parser = importlib.import_module("dema.data.collect.cli")._parser()
    for where in ("before", "after"):
        flags = [word.format(name) for name in ("overwrite", "progress") for word in form]
        argv = [*flags, "hopper", "medium"] if where == "before" else ["hopper", "medium", *flags]
        args = parser.parse_args(argv)
        assert (args.env, args.recipe, args.overwrite, args.progress) == ("hopper", "medium", value, value)
    defaults = parser.parse_args(["hopper", "medium"])
    assert (defaults.overwrite, defaults.progress, defaults.next_observations) == (False, True, True)
    assert parser.parse_args(["hopper", "medium", "--no-next-observations"]).next_observations is False


def _unknown_option_argv(command: str) -> list[str]:
    subcommands = {"bench": "step", "analysis": "tables"}  # commands whose options are a subcommand's
    return [command, *([subcommands[command]] if command in subcommands else []), "--no-such-option"]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_unknown_options_are_one_line_and_exit_2(command, capsys, monkeypatch):
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "1")
    with pytest.raises(SystemExit) as stop:
        main(_unknown_option_argv(command))
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.count("\n") == 1 and err.startswith(f"dema {command}") and ": error: " in err, err


def test_help_names_the_real_models_and_protocols(capsys):
    train = _help(capsys, "train", "--help")
    assert all(name in train for name in MODELS) and all(name in train for name in available_protocols())
    assert all(name in _help(capsys, "sweep", "--help") for name in MODELS)
    assert all(name in _help(capsys, "params", "--help") for name in MODELS)
    assert all(name in _help(capsys, "report", "--help") for name in available_protocols())


def test_train_help_lists_every_field_with_its_default_and_description(capsys):
    text = " ".join(_help(capsys, "train", "--model", "dt", "--dataset", "walker2d-medium", "--help").split())

    def paths(obj, prefix=""):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            yield from paths(value, f"{prefix}{f.name}.") if dataclasses.is_dataclass(value) else [prefix + f.name]

    chosen = {"model_name", "protocol", "preset"}  # --model, --protocol, --preset
    for path in paths(TrainConfig()):
        assert path in chosen or "--" + path.replace("_", "-") in text, path
    assert "--model.dropout FLOAT (default: 0.1)" in text  # dt's preset, not the dataclass's 0.0
    assert "--model.embed-norm, --no-model.embed-norm LayerNorm on the token embeddings" in text  # a comment
    assert "DT's 1% is 500000" in text and "(default: on)" in text  # a docstring; a boolean's default
