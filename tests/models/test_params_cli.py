import json

from dema.cli import main
from dema.models import MODELS, PRESET_DATASETS


def test_params_json_lists_every_model_and_preset(capsys):
    assert main(["params", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert set(table) == set(MODELS)
    assert all(set(row) == set(PRESET_DATASETS) for row in table.values())
    # the paper: about a quarter of DT's parameters on MuJoCo, about 30% fewer on Atari
    assert 0.2 < table["dema"]["halfcheetah-medium"] / table["dt"]["halfcheetah-medium"] < 0.3
    # on Atari, DT's timestep embedding spans the 27k-step episode cap (dema.envs._atari): 3.5M parameters
    # that dominate its count; the claim holds for the rest of the model
    from dema.models import model_config

    cfg = model_config("dt", "atari")
    assert cfg.max_ep_len == 27_000
    assert 0.6 < table["dema"]["atari"] / (table["dt"]["atari"] - cfg.max_ep_len * cfg.embed_dim) < 0.75


def test_unknown_command_is_a_one_line_error(capsys):
    assert main(["nonsense"]) == 2
    assert "unknown command" in capsys.readouterr().err
