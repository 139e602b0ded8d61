"""`dema sweep`: grids checked before any cell runs; cells finished, skipped, failed, resumed; Ray and local."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from dema.errors import ConfigError
from dema.experiments.grid import available_grids, load_grid, parse_grid
from dema.train.loop import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from data_factories import make_arrays, write_d4rl  # noqa: E402

# a model and schedule that train in a second or two per cell
TINY = {"model.n_layer": 1, "model.embed_dim": 16, "model.d_model": 16, "model.d_state": 4, "model.context_len": 5,
        "optim.batch_size": 8, "optim.warmup_steps": 2, "schedule.updates": 12, "schedule.log_every": 2,
        "schedule.checkpoint_every": 2, "schedule.eval_every": 0, "eval.episodes": 1, "eval.max_episode_steps": 10}


def _dataset(path: Path, nan: bool = False) -> Path:
    arrays = make_arrays((30, 17, 40, 25), obs_dim=11, act_dim=3, ends=["terminal"] * 3 + ["timeout"])
    if nan:
        arrays["observations"][7, 2] = np.nan
    return write_d4rl(path, arrays)


def _grid(tmp_path: Path, name: str = "t", **fields) -> Path:
    good = _dataset(tmp_path / "hopper-medium-tiny.hdf5")
    grid = {"name": name, "datasets": [str(good)], "models": ["dema"], "seeds": [0], "protocol": "paper",
            "overrides": dict(TINY), **fields}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


def _sweep(*args, cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dema.cli", "sweep", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600, **kw)


def test_every_packaged_grid_loads_and_names_its_cells():
    names = available_grids()
    assert {"mujoco-main", "token-layout", "residual", "position-embedding", "rnn-like", "delayed-reward",
            "sequence-length", "maze2d", "atari", "atari-ablations", "official", "lr-control",
            "tiny-check"} <= set(names)
    for name in names:
        grid = load_grid(name)
        cells = [c.name(grid.protocol) for c in grid.cells()]
        assert len(cells) == len(set(cells)) > 0
    main = load_grid("mujoco-main")
    assert len(main.cells()) == 9 * 4 * 3
    assert main.cells()[0].name("cpu-main") == "hopper-medium_dema_cpu-main_s0"  # as `dema train` names it
    k = load_grid("sequence-length")
    assert {c.name("cpu-main") for c in k.cells()} >= {"hopper-medium_dema_cpu-main_s0_context_len-4"}
    assert k.config(k.cells()[0], "runs").model.context_len == 4
    atari = load_grid("atari")  # game folders: the preset and the run name come from the folder's name
    first = atari.config(atari.cells()[0], "runs")
    assert atari.cells()[0].name("cpu-atari") == "Pong_dema_cpu-atari_s0"
    assert first.model.token_order.value == "aprev-r-s" and first.model.context_len == 30


@pytest.mark.parametrize("change, message", [
    ({"modles": ["dema"]}, "unknown key"),
    ({"models": ["mamba"]}, "unknown model 'mamba'"),
    ({"datasets": ["foo-medium"]}, "no preset for dataset 'foo-medium'"),
    ({"protocol": "fast"}, "unknown protocol 'fast'"),
    ({"overrides": {"schedule.updatez": 3}}, "unknown field 'schedule.updatez'"),
    ({"overrides": {"optimizer.lr": 3}}, "no section 'optimizer'"),
    ({"overrides": {"schedule.updates": "many"}}, "schedule.updates must be int"),
    ({"overrides": {"seed": 3}}, "cannot be set by a grid"),
    ({"seeds": [0, "1"]}, "seeds must be a int"),
    ({"sweep": {"model.context_len": 8}}, "must be a non-empty list"),
])
def test_a_bad_grid_is_one_clear_error(change, message):
    data = {"name": "g", "datasets": ["hopper-medium"], "models": ["dema"], "seeds": [0], "protocol": "demo", **change}
    with pytest.raises(ConfigError, match=message):
        parse_grid(data, "g.yaml")


def test_bad_grids_stop_the_command_before_any_cell(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    out = _sweep(bad, cwd=tmp_path)
    assert out.returncode == 2 and "not valid YAML" in out.stderr and "Traceback" not in out.stderr
    out = _sweep("no-such-grid", cwd=tmp_path)
    assert out.returncode == 2 and "mujoco-main" in out.stderr
    # a runs directory that holds another grid's cells
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "grid.json").write_text(json.dumps({"name": "other"}))
    out = _sweep(_grid(tmp_path), "--runs-dir", runs, "--executor", "local", cwd=tmp_path)
    assert out.returncode == 2 and "grid 'other'" in out.stderr
    assert not any(p.name.startswith("hopper") for p in runs.iterdir())


@pytest.mark.slow
def test_ray_runs_the_cells_skips_resumes_and_reports_a_failure(tmp_path):
    pytest.importorskip("ray")
    nan = _dataset(tmp_path / "hopper-medium-nan.hdf5", nan=True)
    grid_path = _grid(tmp_path, seeds=[0, 1])
    spec = yaml.safe_load(grid_path.read_text())
    spec["datasets"].append(str(nan))
    grid_path.write_text(yaml.safe_dump(spec))
    runs, results = tmp_path / "runs", tmp_path / "results"

    # seed 1 was interrupted after 4 updates: the sweep resumes it
    grid = load_grid(str(grid_path))
    interrupted = next(c for c in grid.cells() if c.seed == 1 and "tiny" in c.dataset)
    train(grid.config(interrupted, str(runs)), stop_at=4, log=lambda *_: None)

    out = _sweep(grid_path, "--runs-dir", runs, "--results-dir", results, "--workers", "2", "--executor", "ray",
                 cwd=tmp_path)
    assert out.returncode == 1, out.stderr  # a cell failed
    lines = [line for line in out.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == 4
    status = {line.split("] ")[1].split(":")[0]: line for line in lines}
    assert "finished" in status["hopper-medium-tiny_dema_paper_s0"]
    assert "resumed" in status["hopper-medium-tiny_dema_paper_s1"]
    assert all("failed" in status[f"hopper-medium-nan_dema_paper_s{s}"] and "NaN" in status[f"hopper-medium-nan_dema_paper_s{s}"]
               for s in (0, 1))
    assert "resumed at step 4" in (runs / "logs" / "hopper-medium-tiny_dema_paper_s1.log").read_text()
    records = sorted(p.name for p in (results / "t").iterdir())
    assert records == ["hopper-medium-tiny_dema_paper_s0.json", "hopper-medium-tiny_dema_paper_s1.json"]
    record = json.loads((results / "t" / records[0]).read_text())
    assert record["model"] == "dema" and record["seed"] == 0 and record["grid"] == "t"
    assert record["dataset_identity"]["sha256"] and len(record["metrics"]) == 6

    # again: the finished cells are skipped, not retrained; a record stays as written, a missing one
    # is written again from its run directory
    before = (runs / "hopper-medium-tiny_dema_paper_s0" / "eval.json").stat().st_mtime_ns
    kept = results / "t" / records[0]
    kept.write_text(kept.read_text().replace('"grid": "t"', '"grid": "t", "marker": 1', 1))
    (results / "t" / records[1]).unlink()
    again = _sweep(grid_path, "--runs-dir", runs, "--results-dir", results, "--workers", "2", "--executor", "ray",
                   cwd=tmp_path)
    assert again.stdout.count(": skipped") == 2
    assert (runs / "hopper-medium-tiny_dema_paper_s0" / "eval.json").stat().st_mtime_ns == before
    assert json.loads(kept.read_text())["marker"] == 1
    assert json.loads((results / "t" / records[1]).read_text())["seed"] == 1


@pytest.mark.slow
def test_local_executor_resumes_a_killed_sweep_and_ctrl_c_keeps_finished_cells(tmp_path):
    overrides = {**TINY, "schedule.updates": 3000}  # long enough to be killed mid-way
    grid_path = _grid(tmp_path, overrides=overrides)
    runs = tmp_path / "runs"
    cell = runs / "hopper-medium-tiny_dema_paper_s0"
    proc = subprocess.Popen([sys.executable, "-m", "dema.cli", "sweep", str(grid_path), "--runs-dir", str(runs),
                             "--executor", "local", "--workers", "1", "--results-dir", ""],
                            cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (cell / "train_state.pt").is_file() and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 of the driver and its workers
    proc.wait()
    assert (cell / "train_state.pt").is_file() and not (cell / "eval.json").is_file()

    out = _sweep(grid_path, "--runs-dir", runs, "--executor", "local", "--workers", "1", "--results-dir", "",
                 cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resumed" in out.stdout and (cell / "eval.json").is_file()
    assert f"each cell's progress in {runs / 'logs'}/<cell>.log" in out.stdout
    assert (runs / "logs" / "hopper-medium-tiny_dema_paper_s0.log").is_file()

    # Ctrl-C while a long cell runs: it stops cleanly, keeps its checkpoint, and says how to resume
    spec = yaml.safe_load(grid_path.read_text())
    spec["overrides"]["schedule.updates"] = 100_000
    grid_path.write_text(yaml.safe_dump(spec))
    proc = subprocess.Popen([sys.executable, "-m", "dema.cli", "sweep", str(grid_path), "--runs-dir",
                             str(tmp_path / "runs2"), "--executor", "local", "--workers", "1", "--results-dir", ""],
                            cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    second = tmp_path / "runs2" / "hopper-medium-tiny_dema_paper_s0"
    deadline = time.time() + 120
    while not (second / "train_state.pt").is_file() and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=300)  # seconds on a quiet machine; minutes at load 7 on 2 cores
    assert proc.returncode == 130, err
    assert "resume" in err and "Traceback" not in err
    assert (second / "train_state.pt").is_file()  # the checkpoint survives



@pytest.mark.slow
def test_sigterm_to_the_driver_stops_its_workers_and_the_cell_resumes(tmp_path):
    """`kill PID` of the sweep alone (not its process group) exits 130 and takes the workers with it: no
    orphan keeps training and holding the cell's lock, so the same command resumes the cell."""
    grid_path = _grid(tmp_path, overrides={**TINY, "schedule.updates": 100_000})
    runs = tmp_path / "runs"
    cell = runs / "hopper-medium-tiny_dema_paper_s0"
    proc = subprocess.Popen([sys.executable, "-m", "dema.cli", "sweep", str(grid_path), "--runs-dir", str(runs),
                             "--executor", "local", "--workers", "1", "--results-dir", ""],
                            cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 120
    while not (cell / "train_state.pt").is_file() and time.time() < deadline:
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert workers, "the sweep started no worker process"
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "resume" in err and "Traceback" not in err
    deadline = time.time() + 60
    while any(_alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "a worker outlived the sweep"
    from dema.run import RunDir

    RunDir(cell).lock().acquire().release()  # free: a resuming sweep is not refused as "in use"
    assert (cell / "train_state.pt").is_file() and not (cell / "eval.json").is_file()


def _children(pid: int) -> list[int]:
    """Child process ids of `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_cells_recorded_before_are_not_run_again(tmp_path):
    """Records are what survives a machine: a cell with one in the results folder is skipped even
    without its run directory (an earlier session, another machine)."""
    grid_path = _grid(tmp_path, seeds=[0, 1])
    results = tmp_path / "results"
    (results / "t").mkdir(parents=True)
    (results / "t" / "hopper-medium-tiny_dema_paper_s0.json").write_text(json.dumps(_sound_record(tmp_path)))
    out = _sweep(grid_path, "--runs-dir", tmp_path / "runs", "--results-dir", results, "--executor", "local",
                 "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "1 cells already recorded" in out.stdout
    assert "hopper-medium-tiny_dema_paper_s1: not started" in out.stdout
    assert "hopper-medium-tiny_dema_paper_s0:" not in out.stdout


def test_a_sweep_whose_cells_are_all_recorded_says_so_and_runs_nothing(tmp_path):
    """The lanes re-run a job whose cells were recorded in an earlier session: one line that says
    there is nothing to run, exit 0, no run directory made."""
    grid_path = _grid(tmp_path)
    results = tmp_path / "results"
    (results / "t").mkdir(parents=True)
    (results / "t" / "hopper-medium-tiny_dema_paper_s0.json").write_text(json.dumps(_sound_record(tmp_path)))
    out = _sweep(grid_path, "--runs-dir", tmp_path / "runs", "--results-dir", results, "--executor", "local",
                 cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "grid t: nothing to run, every selected cell has its record" in out.stdout
    assert "0 cells (" not in out.stdout and " min" not in out.stdout
    assert not (tmp_path / "runs" / "hopper-medium-tiny_dema_paper_s0").exists()


def test_datasets_and_values_select_cells_and_only_their_datasets_must_exist(tmp_path):
    """--datasets and --values pick cells of a grid (the lanes run one claim's datasets before the
    next claim's); a dataset outside the selection may be missing; a filter naming something the grid
    lacks is one line, exit 2."""
    grid_path = _grid(tmp_path, sweep={"model.context_len": [4, 5]})
    grid = yaml.safe_load(grid_path.read_text())
    grid["datasets"].append(str(tmp_path / "walker2d-medium-not-collected.hdf5"))
    grid_path.write_text(yaml.safe_dump(grid))
    good = grid["datasets"][0]
    common = ("--runs-dir", tmp_path / "runs", "--results-dir", "", "--executor", "local", "--dry-run")

    out = _sweep(grid_path, *common, "--datasets", good, "--values", "model.context_len=5", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("not started") == 1
    assert "hopper-medium-tiny_dema_paper_s0_context_len-5: not started" in out.stdout

    everything = _sweep(grid_path, *common, cwd=tmp_path)  # the uncollected dataset is now selected
    assert everything.returncode == 2 and "walker2d-medium-not-collected" in everything.stderr

    for bad, named in ((("--datasets", "hopper-medium"), "not in grid t"),
                       (("--values", "model.context_len=9"), "sweeps model.context_len over [4, 5]"),
                       (("--values", "model.n_layer=1"), "swept fields (model.context_len)")):
        out = _sweep(grid_path, *common, *bad, cwd=tmp_path)
        assert out.returncode == 2 and named in out.stderr, (bad, out.stderr)
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_only_the_papers_grids_record_into_results_by_default(tmp_path):
    """results/ is the project's scientific record: the smoke grid and a user's own grid file write
    their records beside their runs unless --results-dir says otherwise; the paper's grids keep results/."""
    grid_path = _grid(tmp_path, name="mine")
    out = _sweep(grid_path, "--executor", "local", "--workers", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "records in runs/mine/records" in out.stdout
    assert (tmp_path / "runs" / "mine" / "records" / "mine" / "hopper-medium-tiny_dema_paper_s0.json").is_file()
    assert not (tmp_path / "results").exists()

    (tmp_path / "results" / "tiny-check").mkdir(parents=True)  # a record in results/ is not the smoke grid's
    (tmp_path / "results" / "tiny-check" / "hopper-medium-replay-small_dema_demo_s0.json").write_text("{}")
    smoke = _sweep("tiny-check", "--executor", "local", "--dry-run", cwd=tmp_path)
    assert smoke.returncode == 0, smoke.stderr
    assert "already recorded" not in smoke.stdout and "hopper-medium-replay-small_dema_demo_s0: not started" in smoke.stdout
    assert load_grid("tiny-check").default_results_dir(Path("runs/tiny-check")) == Path("runs/tiny-check/records")
    assert load_grid("mujoco-main").default_results_dir(Path("runs/mujoco-main")) == Path("results")


def test_sweep_without_pyyaml_is_one_line_naming_the_extra(tmp_path):
    """The main job's install has no PyYAML: `dema sweep` says which extra brings it (no traceback)."""
    code = ("import sys; sys.modules['yaml'] = None\n"
            "from dema.cli import main\n"
            "sys.exit(main(['sweep', 'tiny-check', '--executor', 'local', '--dry-run']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and 'pip install -e ".[sweep]"' in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def _sound_record(tmp_path: Path, cell: str = "hopper-medium-tiny_dema_paper_s0") -> dict:
    """The part of a record of grid t's seed-0 cell that the sweep checks (as records.py writes it)."""
    return {"schema": 1, "run": cell, "grid": "t", "dataset": "hopper-medium-tiny", "model": "dema", "seed": 0,
            "protocol": "paper", "variant": {}, "normalized_mean": 12.5, "eval": {"normalized_mean": 12.5},
            "config": {"model_name": "dema", "seed": 0, "protocol": "paper", "run_name": cell,
                       "data": {"dataset": str(tmp_path / "hopper-medium-tiny.hdf5")}}}


def test_a_damaged_record_is_named_and_its_cell_runs_again(tmp_path):
    """A record cut short, emptied, of the wrong types, another cell's, or bytes that are not text is
    no result: the sweep names it and runs its cell again (or writes it again from the finished run
    directory), never "already recorded" with exit 0."""
    grid_path = _grid(tmp_path)
    record = tmp_path / "results" / "t" / "hopper-medium-tiny_dema_paper_s0.json"
    record.parent.mkdir(parents=True)
    sound = json.dumps(_sound_record(tmp_path))
    damages = {"cut short": sound[: len(sound) // 2].encode(), "empty": b"{}",
               "wrong type": sound.replace('"seed": 0', '"seed": "0"', 1).encode(),
               "another cell's": json.dumps(_sound_record(tmp_path, "x_dema_paper_s0")).encode(),
               "contradicting": sound.replace('"model": "dema"', '"model": "dt"', 1).encode(),
               "not text": b"\xff\xfe\x00\x9c" * 10}
    common = ("--runs-dir", tmp_path / "runs", "--results-dir", tmp_path / "results", "--executor", "local")
    for case, data in damages.items():
        record.write_bytes(data)
        out = _sweep(grid_path, *common, "--dry-run", cwd=tmp_path)
        assert out.returncode == 0, (case, out.stderr)
        assert "already recorded" not in out.stdout and "paper_s0: not started" in out.stdout, case
        assert "damaged" in out.stderr and str(record) in out.stderr and "Traceback" not in out.stderr, case

    record.write_bytes(damages["cut short"])
    out = _sweep(grid_path, *common, "--workers", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "hopper-medium-tiny_dema_paper_s0: finished" in out.stdout
    assert json.loads(record.read_text())["run"] == "hopper-medium-tiny_dema_paper_s0"
    # damaged again after the cell finished here: written again from its run directory, not retrained
    record.write_bytes(damages["empty"])
    out = _sweep(grid_path, *common, "--workers", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "written again from its finished run directory" in out.stderr and ": skipped" in out.stdout
    assert json.loads(record.read_text())["run"] == "hopper-medium-tiny_dema_paper_s0"


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_workers_below_one_is_one_line(tmp_path, workers):
    out = _sweep(_grid(tmp_path), "--executor", "local", "--workers", workers, "--results-dir", "", cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and f"--workers {workers}" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "runs").exists()


def _closed_port() -> int:
    """A local TCP port nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_cluster_address_is_one_line_in_seconds(tmp_path):
    """`ray.init` retries an address where no cluster answers for a minute or more (and a SIGTERM sent
    meanwhile once went unheard); the sweep checks the address first and says so in seconds."""
    port = _closed_port()
    if importlib.util.find_spec("ray"):
        began = time.time()
        out = _sweep(_grid(tmp_path), "--executor", "ray", "--address", f"127.0.0.1:{port}", "--results-dir", "",
                     cwd=tmp_path)
        assert out.returncode == 2, out.stdout + out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and f"127.0.0.1:{port}" in out.stderr
        assert time.time() - began < 50  # Python, torch and the grid load in seconds; Ray's retries take 60+

    from dema.experiments.sweep import check_reachable, ray_host_port

    assert ray_host_port("ray://head:10002") == ("head", 10002) and ray_host_port("ray://head") == ("head", 10001)
    assert ray_host_port("10.0.0.1:6380") == ("10.0.0.1", 6380) and ray_host_port("[::1]:7") == ("::1", 7)
    assert ray_host_port("auto") is None and ray_host_port("head") == ("head", 6379)
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        began = time.time()
        with pytest.raises(ConfigError, match=f"no Ray cluster answers at 127.0.0.1:{port}"):
            check_reachable(address)
        assert time.time() - began < 10
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        check_reachable("head:http")


@pytest.mark.slow
def test_kill_9_of_a_local_driver_leaves_no_worker_holding_the_cell(tmp_path):
    """kill -9 of the sweep runs no handler, so its workers must notice by themselves that their parent
    died (dema.experiments.sweep.die_with_parent): none trains on as an orphan holding the cell's lock,
    and the same command resumes the cell."""
    grid_path = _grid(tmp_path, overrides={**TINY, "schedule.updates": 100_000})
    runs = tmp_path / "runs"
    cell = runs / "hopper-medium-tiny_dema_paper_s0"
    proc = subprocess.Popen([sys.executable, "-m", "dema.cli", "sweep", str(grid_path), "--runs-dir", str(runs),
                             "--executor", "local", "--workers", "1", "--results-dir", ""],
                            cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    workers = []
    try:
        deadline = time.time() + 120
        while not (cell / "train_state.pt").is_file() and time.time() < deadline:
            time.sleep(0.05)
        workers = _children(proc.pid)
        assert workers, "the sweep started no worker process"
        os.kill(proc.pid, signal.SIGKILL)  # the driver alone, as `kill -9 PID` does
        proc.wait()
        deadline = time.time() + 30
        while any(_alive(pid) for pid in workers) and time.time() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers), "a worker outlived the killed sweep"
    finally:
        for pid in workers:  # never leave an orphan training on this machine, whatever happened
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    from dema.run import RunDir

    RunDir(cell).lock().acquire().release()  # free: the sweep that resumes the cell is not refused
    out = _sweep(grid_path, "--runs-dir", runs, "--executor", "local", "--results-dir", "", "--dry-run", cwd=tmp_path)
    assert "(will resume)" in out.stdout, out.stdout + out.stderr


def test_a_grid_file_names_a_minari_dataset_by_its_id(tmp_path, monkeypatch):
    """A grid file's dataset may be a Minari id (issue 26): found in Minari's root, the cell trains and
    scores on it, its record names the id and the reference scores the dataset carries."""
    pytest.importorskip("minari")
    from data_factories import write_with_minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    write_with_minari("test/hopper/random-v0", episodes=4)
    grid = {"name": "m", "datasets": ["test/hopper/random-v0"], "models": ["dt"], "seeds": [0], "protocol": "paper",
            "overrides": {**TINY, "schedule.updates": 4}}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(grid))
    out = _sweep(path, "--runs-dir", tmp_path / "runs", "--results-dir", tmp_path / "results", "--executor", "local",
                 "--workers", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads((tmp_path / "results" / "m" / "test-hopper-random-v0_dt_paper_s0.json").read_text())
    assert record["dataset"] == "test/hopper/random-v0" and record["config"]["preset"] == "hopper-default"
    assert record["eval"]["reference_scores"]["source"] == "dataset"
