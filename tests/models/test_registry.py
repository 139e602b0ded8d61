"""The model registry is the one list of models: each entry is consistent, and every list of models
in the package (presets, learning rates, report, bench, demo, grids, --help) derives from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dema.envs import PRESETS
from dema.errors import ConfigError
from dema.models import MODELS, REGISTRY, learning_rate, model_config
from dema.models.registry import Family, Study, label, main_table, model_spec, models_in, rank, reference_of


def test_names_and_labels_are_unique_and_references_are_main_table_models_listed_before():
    assert MODELS == tuple(spec.name for spec in REGISTRY)
    assert len(set(MODELS)) == len(MODELS) and len({s.label for s in REGISTRY}) == len(REGISTRY)
    for index, spec in enumerate(REGISTRY):
        if spec.reference is not None:  # the report sorts a comparison by rank: the reference comes first
            assert spec.reference in main_table() and MODELS.index(spec.reference) < index, spec.name


@pytest.mark.parametrize("spec", REGISTRY, ids=MODELS)
def test_each_entry_builds_on_every_preset_with_its_block(spec):
    for preset in PRESETS:
        cfg = model_config(spec.name, preset)
        assert cfg.block is spec.block
        assert learning_rate(spec.name, preset) == spec.family.learning_rate(PRESETS[preset])


def test_learning_rate_families():
    """DeMa's models: the DeMa paper's rate per dataset; DT, DC and BC: DT's gym code's 1e-4."""
    assert {m: learning_rate(m, "halfcheetah-medium") for m in MODELS} == {
        m: 1e-3 if model_spec(m).family is Family.DEMA else 1e-4 for m in MODELS}
    assert {learning_rate(m, "hopper-medium") for m in MODELS} == {1e-4}
    assert {s.family for s in REGISTRY if s.name.startswith("dema")} == {Family.DEMA}


def test_the_report_order_labels_and_comparisons_come_from_the_registry():
    from dema.experiments.report.aggregates import comparisons

    assert main_table() == ("dema", "dt", "dc", "bc")
    assert [reference_of(m) for m in ("dt-shared", "dema-rnn", "dema-official", "dt-official", "dc")] == [
        "dt", "dema", "dema", "dt", None]
    assert sorted(["bc", "zz-old", "dema-rnn", "dt", "dema"], key=rank) == ["dema", "dt", "dema-rnn", "bc", "zz-old"]
    assert label("dema") == "DeMa" and label("zz-old") == "zz-old"  # a name no longer registered shows as it is
    assert comparisons(["dt-shared", "bc", "dema", "dt", "dema-post", "zz-old"]) == [
        ["dema", "dt", "bc"], ["dt", "dt-shared"], ["dema", "dema-post"], ["zz-old"]]


def test_bench_and_demo_lists_come_from_the_registry():
    from dema.bench import cost
    from dema.commands import demo

    assert models_in(Study.HEADLINE) == ("dema", "dt")
    assert demo.MODELS == (("dema", "DeMa"), ("dt", "DT"))
    assert set(cost.COST_MODELS) == {"dema-rnn", "dema", "dt", "dc"}
    assert set(cost.PRESET_MODELS) == {"dema", "dema-rnn", "dema-post", "dema-bl3d", "dt", "dc"}


def test_unknown_model_is_one_line_naming_the_registry(capsys):
    with pytest.raises(ConfigError, match="choose one of dema, dt, dt-shared"):
        model_config("dxlstm", "hopper-medium")
    from dema.cli import main

    assert main(["train", "--model", "dxlstm", "--dataset", "hopper-medium"]) == 2
    assert f"choose one of {', '.join(MODELS)}" in capsys.readouterr().err


def test_train_help_lists_every_registered_model(capsys):
    from dema.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = re.sub(r"-\s+", "-", " ".join(capsys.readouterr().out.split()))  # argparse wraps at hyphens too
    assert f"--model MODEL the model: {', '.join(MODELS)} (default: dema)" in text


def test_the_docs_name_every_registered_model():
    """CONTRIBUTING.md's recipe ends with a line in the README's model list and docs/ARCHITECTURE.md's table."""
    root = Path(__file__).resolve().parents[2]
    readme = root.joinpath("README.md").read_text()
    models_paragraph = readme[readme.index("Models (`--model`"):readme.index("Datasets (`--dataset`)")]
    architecture = root.joinpath("docs", "ARCHITECTURE.md").read_text()
    for model in MODELS:
        assert f"`{model}`" in models_paragraph, model
        assert f"\n| `{model}` |" in architecture, model
