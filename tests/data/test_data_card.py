"""`dema data ID_OR_PATH --card DIR` (issue 26): the card's numbers come from the data and what the file
records, the PNG stays small, a Minari dataset's card names its own reference scores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from dema.data.load import load_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "robustness"))
from corpus import dema  # noqa: E402
from data_factories import make_arrays, write_d4rl  # noqa: E402

STAGES = [{"label": "random", "steps": 12}, {"label": "sac-Hopper stochastic", "steps": 36}]


def test_a_card_says_what_the_dataset_is(tmp_path, capsys):
    path = write_d4rl(tmp_path / "hopper-medium-replay-v5.hdf5", make_arrays((12, 20, 16), obs_dim=11, act_dim=3),
                      attrs={"env_id": "Hopper-v5", "recipe": "medium-replay", "stages": json.dumps(STAGES),
                             "command": "dema collect hopper medium-replay --steps 48", "transitions": 48,
                             "approximation": "approximation of D4RL medium-replay: fixed policies"})
    code, out, err = dema(capsys, "data", path, "--card", tmp_path / "cards")
    assert code == 0, err
    md = (tmp_path / "cards" / "hopper-medium-replay-v5.md").read_text()
    png = tmp_path / "cards" / "hopper-medium-replay-v5.png"
    dataset = load_dataset(path)
    returns = dataset.episode_returns()
    assert "48 transitions in 3 episodes" in md
    assert f"| episode return | {returns.mean():,.1f} | {returns.std():,.1f} | {returns.min():,.1f} |" in md
    assert "| episode length (steps) | 16 |" in md and "| normalised return |" in md
    assert "`Hopper-v5`" in md and "dema's table's reference scores" in md
    assert "random (12 transitions, 25%); sac-Hopper stochastic (36 transitions, 75%)" in md
    assert dataset.content_sha256() in md and "`dema collect hopper medium-replay --steps 48`" in md
    assert "D4RL's `hopper-medium-replay-v2`" in md and "402,000 transitions" in md and "It has 48 transitions" in md
    assert "approximation of D4RL medium-replay" in md
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 100_000


def test_a_minari_datasets_card_names_its_own_reference_scores(tmp_path, monkeypatch, capsys):
    pytest.importorskip("minari")
    from data_factories import write_with_minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    write_with_minari("test/hopper/random-v0", ref_scores=(-20.0, 3000.0))
    code, _, err = dema(capsys, "data", "test/hopper/random-v0", "--card", tmp_path / "cards")
    assert code == 0, err
    md = (tmp_path / "cards" / "test-hopper-random-v0.md").read_text()
    assert "the dataset's own reference scores" in md and "-20 is 0, 3000 is 100" in md
    assert "Behaviour policy: random." in md
    normalised = 100 * (load_dataset("test/hopper/random-v0").episode_returns() + 20) / 3020
    assert f"| normalised return | {normalised.mean():,.1f} |" in md


def test_a_card_is_written_only_for_a_dataset_that_loads(tmp_path, capsys):
    code, _, err = dema(capsys, "data", tmp_path / "missing.hdf5", "--card", tmp_path / "cards")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "cards").exists()
