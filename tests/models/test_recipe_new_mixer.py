"""CONTRIBUTING.md's recipe "Adding a model or a mixer", followed once.

A throwaway mixer (a per-channel exponential moving average) is added to a copy of the package by
the recipe's three steps and nothing else: (1) the mixer's file in models/, (2) its `BlockKind` and
its branch of `build_block`, (3) one entry of the model registry. The copy then trains and scores
it with `dema train`, and the new name shows in every list derived from the registry. If this test
needs a fourth edit to pass, the recipe (and this test) must say so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the recipes' helpers
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))  # the tests' one tiny-D4RL writer
from data_factories import make_arrays, write_d4rl  # noqa: E402
from recipe_helpers import copy_package, insert_at, run_copy  # noqa: E402

MIXER_FILE = '''"""A throwaway causal mixer: per channel h_t = a h_{t-1} + (1 - a) x_t, with a learned decay a."""

import torch
import torch.nn as nn


class EMAMixer(nn.Module):
    def __init__(self, d_model: int):
        super().__init__()
        self.decay_logit = nn.Parameter(torch.zeros(d_model))
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L, D), mask (B, L) True at real tokens: left padding is zeroed, so the state stays
        exactly zero until the first real token (the padding contract)."""
        if mask is not None:
            x = x * mask[..., None]
        a = torch.sigmoid(self.decay_logit)  # (D,)
        h, states = torch.zeros_like(x[:, 0]), []
        for t in range(x.shape[1]):
            h = a * h + (1 - a) * x[:, t]
            states.append(h)
        return self.proj(torch.stack(states, dim=1))  # L x (B, D) -> (B, L, D)
'''
BLOCK_KIND = '    EMA = "ema"  # GPT-2 block with a per-channel moving average as the mixer (a test\'s)\n'
BLOCK_BRANCH = '''    if cfg.block is BlockKind.EMA:
        return GPT2Block(cfg, EMAMixer(cfg.d_model))
'''
ENTRY = '''    ModelSpec("dt-ema", "DT-EMA", Family.DT, BlockKind.EMA, _DT_TRUNK, reference="dt"),
'''

CHECKS = '''
import contextlib, io, re, sys
from dema.cli import main
from dema.experiments.grid import parse_grid
from dema.experiments.report.aggregates import comparisons
from dema.models import MODELS, model_config
from dema.models.registry import label, rank

tiny, runs = sys.argv[1], sys.argv[2]
assert MODELS[-1] == "dt-ema" and label("dt-ema") == "DT-EMA", MODELS
assert comparisons(["dt", "dt-ema", "dema"]) == [["dema", "dt"], ["dt", "dt-ema"]]
assert sorted(["dt-ema", "bc", "zz"], key=rank) == ["bc", "dt-ema", "zz"]
assert model_config("dt-ema", "hopper-medium").block.value == "ema"
parse_grid({"name": "ema-check", "datasets": [tiny], "models": ["dt", "dt-ema"], "seeds": [0],
            "protocol": "cpu-short", "overrides": {"schedule.updates": 3}}, "ema-check.yaml")
tiny_model = ["--model.n-layer", "1", "--model.embed-dim", "16", "--model.d-model", "16", "--model.context-len", "5",
              "--optim.batch-size", "8", "--optim.warmup-steps", "2", "--schedule.log-every", "1",
              "--schedule.eval-every", "0", "--eval.episodes", "1", "--eval.max-episode-steps", "5",
              "--progress", "False", "--threads", "1"]
assert main(["train", "--model", "dt-ema", "--dataset", tiny, "--protocol", "cpu-short", "--runs-dir", runs,
             "--schedule.updates", "3", *tiny_model]) == 0
help_ = io.StringIO()
with contextlib.redirect_stdout(help_), contextlib.suppress(SystemExit):
    main(["train", "--help"])
assert "dt-official, dt-ema (default: dema)" in re.sub(r"-\\s+", "-", " ".join(help_.getvalue().split()))
assert main(["params", "--json"]) == 0
'''


@pytest.fixture
def tiny_hopper(tmp_path) -> Path:
    return write_d4rl(tmp_path / "hopper-medium-tiny.hdf5", make_arrays((30, 17, 40, 9, 25), seed=0))


def test_a_new_mixer_takes_its_file_its_block_kind_and_one_registry_entry(tiny_hopper, tmp_path):
    package = copy_package(tmp_path)
    models = package / "models"
    # 1. the mixer's file
    (models / "ema.py").write_text(MIXER_FILE)
    # 2. its block kind, and how build_block wraps it
    insert_at(models / "config.py", 'MLP = "mlp"', BLOCK_KIND, before=False)
    insert_at(models / "blocks.py", "from dema.models.mixers import", "from dema.models.ema import EMAMixer\n")
    insert_at(models / "blocks.py", 'raise AssertionError(f"unhandled block kind', BLOCK_BRANCH)
    # 3. one registry entry, at the end of REGISTRY
    registry = models / "registry.py"
    source = registry.read_text()
    end = source.index("\n)\n", source.index("REGISTRY: tuple[ModelSpec, ...] = ("))
    registry.write_text(source[:end + 1] + ENTRY + source[end + 1:])

    runs = tmp_path / "runs"
    proc = run_copy(package, "-c", CHECKS, str(tiny_hopper), str(runs))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    run_dir = runs / f"{tiny_hopper.stem}_dt-ema_cpu-short_s0"
    assert json.loads((run_dir / "config.json").read_text())["model"]["block"] == "ema"
    score = json.loads((run_dir / "eval.json").read_text())
    assert score["episodes"] == 1
    params = json.loads(proc.stdout[proc.stdout.index('{\n  "dema"'):])
    assert list(params)[-1] == "dt-ema" and params["dt-ema"]["hopper-medium"] > 0
