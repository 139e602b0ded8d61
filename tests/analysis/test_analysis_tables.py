"""`dema analysis tables`: docs/ANALYSES.md's tables from the JSON `dema surgery` and `dema decay` wrote."""

from __future__ import annotations

import json
import shutil

from dema.analysis.tables import decay_episode_table, decay_window_table, surgery_table
from dema.cli import main


def test_tables_of_a_record_folder_and_of_a_run_directory(tiny_dema_run, tmp_path, capsys):
    assert main(["surgery", str(tiny_dema_run), "--episodes", "1", "--max-episode-steps", "6", "--kinds", "zero,swap",
                 "--out", str(tmp_path / "s")]) == 0
    assert main(["decay", str(tiny_dema_run), "--episodes", "1", "--max-episode-steps", "12", "--every", "2",
                 "--far", "3", "--out", str(tmp_path / "w")]) == 0
    assert main(["decay", str(tiny_dema_run), "--view", "episode", "--episodes", "1", "--max-episode-steps", "12",
                 "--every", "4", "--far", "3", "--out", str(tmp_path / "e")]) == 0
    cell = tmp_path / "analyses" / "hopper-medium_dema_cpu-main_s0"  # as scripts/analysis_runs.sh lays it out
    cell.mkdir(parents=True)
    for source, name in (("s/surgery.json", "surgery.json"), ("w/decay.json", "decay.json"),
                         ("e/decay.json", "decay-episode.json")):
        shutil.copy(tmp_path / source, cell / name)
    capsys.readouterr()

    assert main(["analysis", "tables", str(cell)]) == 0
    out = capsys.readouterr().out
    surgery, window, episode = (json.loads((cell / n).read_text()) for n in ("surgery.json", "decay.json",
                                                                             "decay-episode.json"))
    assert out == (f"## {cell.name}\n\n"
                   f"**surgery** ({cell / 'surgery.json'})\n\n" + "\n".join(surgery_table(surgery)) + "\n\n"
                   f"**decay, window view** ({cell / 'decay.json'})\n\n" + "\n".join(decay_window_table(window)) + "\n\n"
                   f"**decay, episode view** ({cell / 'decay-episode.json'})\n\n"
                   + "\n".join(decay_episode_table(episode)) + "\n\n")
    assert "| zero | " in out and "| swap with layer 1 | " in out and "(identity)" in out
    assert "| 0 | " in out.split("**decay, window view**")[1]  # one row per layer

    # a run directory: the commands' default folders; what is missing is named, the rest printed
    run = shutil.copytree(tiny_dema_run, tmp_path / "run")
    shutil.copytree(tmp_path / "s", run / "surgery")
    assert main(["analysis", "tables", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"## run\n\n**surgery** ({run / 'surgery' / 'surgery.json'})\n\n| manipulation |")
    assert f"**decay, window view**: {run / 'decay.json'} not found\n\n" in out

    # an RNN-like DeMa's record folder (the episode view only): the other two are not applicable to it,
    # not missing; the same folder of a Transformer-like model names them as not found
    for model in ("dema-rnn", "dema"):
        rnn = tmp_path / "analyses" / f"walker2d-medium_{model}_cpu-main_s0"
        rnn.mkdir(parents=True, exist_ok=True)
        (rnn / "decay-episode.json").write_text(json.dumps({**episode, "model": model}))
        assert main(["analysis", "tables", str(rnn)]) == 0
        out = capsys.readouterr().out
        if model == "dema-rnn":
            surgery, window = "**surgery**: not applicable to RNN-like", "**decay, window view**: not applicable"
        else:
            surgery = f"**surgery**: {rnn / 'surgery.json'} not found"
            window = f"**decay, window view**: {rnn / 'decay.json'} not found"
        assert surgery in out and window in out
        assert "\n".join(decay_episode_table(episode)) in out


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["analysis", "tables", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "surgery.json").write_text('{"n_layer": 2}')
    assert main(["analysis", "tables", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "surgery.json: not the JSON `dema surgery` or `dema decay` writes" in err and len(err.splitlines()) == 1
