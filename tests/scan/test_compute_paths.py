"""The compute paths (dema.scan.paths): one value, read once from the environment, scoped in code.

A scope changes the paths inside it only (in this thread only), restores them on the way out
(nested, and on an exception), and never writes os.environ; the environment variables keep setting
the defaults, old names included, and a bad value is one clear error (exit 2 from a command)."""

from __future__ import annotations

import contextvars
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from dema.errors import ConfigError
from dema.scan import compute_paths, current_paths, numba_available, scan_backend
from dema.scan.paths import ComputePaths, canonical_record
from dema.scan.stateful import stateful_backend

SRC = Path(__file__).resolve().parents[2] / "src"
AUTO = "numba" if numba_available() else "ref"  # what a CPU float32 scan takes with nothing forced


def test_a_scope_changes_the_paths_inside_it_only():
    u = torch.zeros(1, 2, 3)
    outside = current_paths()
    with compute_paths(scan="", ssm="node", fused_step=True):
        assert scan_backend(u) == AUTO
        with compute_paths(scan="ref") as inside:
            assert inside == current_paths() == ComputePaths(scan="ref")
            assert scan_backend(u) == "ref"
        assert scan_backend(u) == AUTO
    assert current_paths() == outside


def test_scopes_nest_and_each_restores_what_it_found():
    with compute_paths(scan="ref", fused_step=False):
        with compute_paths(ssm="ref"):
            assert current_paths() == ComputePaths(scan="ref", ssm="ref", fused_step=False)  # the outer's kept
            with compute_paths(scan="torch", fused_step=True):
                assert current_paths() == ComputePaths(scan="torch", ssm="ref", fused_step=True)
            assert current_paths() == ComputePaths(scan="ref", ssm="ref", fused_step=False)
        assert current_paths() == ComputePaths(scan="ref", ssm="node", fused_step=False)
        with pytest.raises(RuntimeError), compute_paths(scan="numba"):
            raise RuntimeError("a failure inside a scope")
        assert current_paths().scan == "ref"  # restored on the way out of a failure too


def test_a_scope_never_touches_the_environment():
    before = dict(os.environ)
    with compute_paths(scan="ref", ssm="ref", fused_step=False):
        assert dict(os.environ) == before
        scan_backend(torch.zeros(1, 2, 3))
    assert dict(os.environ) == before


def test_a_scope_holds_in_its_own_thread_only():
    """Two threads, each in its own scope at the same time, each see their own paths; a thread
    started inside a scope begins at the environment's defaults unless it is given the context."""
    entered, checked = threading.Event(), threading.Event()
    seen = {}

    def other_thread():
        with compute_paths(scan="torch"):
            entered.set()
            checked.wait(10)
            seen["other"] = scan_backend(torch.zeros(1, 2, 3))

    with compute_paths(scan=""):
        thread = threading.Thread(target=other_thread)
        thread.start()
        assert entered.wait(10)
        seen["main, while the other is in its scope"] = scan_backend(torch.zeros(1, 2, 3))
        with compute_paths(scan="ref"):
            checked.set()
            thread.join(10)
            seen["main, in its own scope"] = scan_backend(torch.zeros(1, 2, 3))
    assert seen == {"other": "torch", "main, while the other is in its scope": AUTO, "main, in its own scope": "ref"}

    fresh, carried = {}, {}
    with compute_paths(scan="ref"):
        threads = [threading.Thread(target=lambda: fresh.update(paths=current_paths())),
                   threading.Thread(target=contextvars.copy_context().run,
                                    args=(lambda: carried.update(paths=current_paths()),))]
        for thread in threads:
            thread.start()
    for thread in threads:
        thread.join(10)
    assert fresh["paths"] == ComputePaths.from_environment(os.environ)  # the defaults, not the scope
    assert carried["paths"].scan == "ref"


def test_the_environment_sets_the_defaults_with_old_names_and_clear_errors():
    read = ComputePaths.from_environment
    assert read({}) == ComputePaths() == ComputePaths(scan="", ssm="node", fused_step=True)
    assert read({"DEMA_SCAN": " Ref ", "DEMA_SSM": "ref", "DEMA_FUSED_STEP": "0"}) == \
        ComputePaths(scan="ref", ssm="ref", fused_step=False)
    assert read({"DEMA_SCAN": "fused", "DEMA_SSM": "fused", "DEMA_FUSED_STEP": "1"}) == \
        ComputePaths(scan="torch", ssm="node", fused_step=True)  # the names before issue 28
    for variable, value, message in [("DEMA_SCAN", "cuda", "DEMA_SCAN='cuda' is not a scan; use one of numba, torch"),
                                     ("DEMA_SSM", "fast", "DEMA_SSM='fast' is not an SSM path; use one of node, ref"),
                                     ("DEMA_FUSED_STEP", "false", "DEMA_FUSED_STEP='false' is not 0 or 1")]:
        with pytest.raises(ConfigError, match=message):
            read({variable: value})
    with pytest.raises(ConfigError, match="fused_step='no' is not True or False"):
        ComputePaths(fused_step="no")


def test_a_run_records_the_paths_as_the_variables_that_set_them():
    assert ComputePaths().record() == {"DEMA_SCAN": "", "DEMA_SSM": "", "DEMA_FUSED_STEP": ""}
    paths = ComputePaths(scan="ref", ssm="ref", fused_step=False)
    assert paths.record() == {"DEMA_SCAN": "ref", "DEMA_SSM": "ref", "DEMA_FUSED_STEP": "0"}
    assert ComputePaths.from_environment(paths.record()) == paths
    # a record written before issue 28 compares by the paths it names, not their spelling
    old = {"device": "cpu", "DEMA_SCAN": "fused", "DEMA_SSM": "fused", "DEMA_FUSED_STEP": "1"}
    assert canonical_record(old) == {"device": "cpu", "DEMA_SCAN": "torch", "DEMA_SSM": "", "DEMA_FUSED_STEP": ""}
    assert canonical_record({"device": "cpu"}) == {"device": "cpu"}


def test_the_scan_from_a_state_follows_the_paths():
    """dema.scan.stateful (RNN-like acting) ignored DEMA_SCAN before issue 28."""
    u = torch.zeros(1, 2, 3)
    with compute_paths(scan=""):
        assert stateful_backend(u) == AUTO
    with compute_paths(scan="ref"):
        assert stateful_backend(u) == "ref"
    with compute_paths(scan="torch"):  # no from-state form; without a gradient its forward is the reference's
        assert stateful_backend(u) == "ref"


def _python(code: str, **environ) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEMA_")}
    env.update(environ, PYTHONPATH=os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_the_environment_is_read_once_at_first_use():
    code = ("import os\n"
            "from dema.scan import scan_backend\n"
            "print(scan_backend())\n"
            "os.environ['DEMA_SCAN'] = 'numba'\n"
            "print(scan_backend())\n")
    result = _python(code, DEMA_SCAN="fused")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["torch", "torch"]  # the old name; later changes are not read


def test_a_bad_variable_is_one_line_and_exit_2_from_a_command():
    code = "import sys\nfrom dema.cli import main\nsys.exit(main(['bench', 'act', '--budget', '0.1']))\n"
    result = _python(code, DEMA_FUSED_STEP="yes")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("dema bench: error: DEMA_FUSED_STEP='yes' is not 0 or 1"), lines


# Writes to the environment and assignments to other modules that src/dema may keep, and why: a
# third-party setting the library reads only from the environment, a documented hook, or a patch
# nothing else can replace.
ALLOWED = {
    ("dema/data/collect/cli.py", "single_threaded_blas"): "OpenBLAS, OpenMP and MKL read their thread "
                                                          "counts only from the environment",
    ("dema/scan/triton_scan.py", "_interpretable_stdlib"): "Triton's standard library, interpreted for the "
                                                           "length of a launch (see its docstring)",
    ("dema/cli.py", "main"): "warnings.formatwarning, the hook the warnings module documents for replacing",
    ("dema/data/collect/minari_writer.py", "_minari_root"): "minari's writer reads its root only from "
                                                            "MINARI_DATASETS_PATH (minari.storage)",
    ("dema/cli_options.py", "__call__"): "an argparse Action sets its value on the parsed namespace "
                                         "(argparse's documented API), not on a module",
}
_ENVIRON_WRITES = {"pop", "popitem", "setdefault", "update", "clear", "__setitem__", "__delitem__"}


def _hidden_switches(path: Path) -> list[tuple[str, int, str]]:
    """(function, line, what) for each write to os.environ, setattr call, and assignment to an
    attribute of an imported name (a module or something taken from one) in one source file."""
    import ast

    tree = ast.parse(path.read_text())
    imported = {(alias.asname or alias.name).split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    found = []

    def is_environ(node) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "environ") or \
            (isinstance(node, ast.Name) and node.id == "environ")

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            targets = child.targets if isinstance(child, ast.Assign) else \
                [child.target] if isinstance(child, (ast.AugAssign, ast.AnnAssign)) else \
                child.targets if isinstance(child, ast.Delete) else []
            for target in targets:
                if isinstance(target, ast.Subscript) and is_environ(target.value):
                    found.append((name, child.lineno, "os.environ[...] written"))
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                        and target.value.id in imported:
                    found.append((name, child.lineno, f"{target.value.id}.{target.attr} assigned"))
            if isinstance(child, ast.Call):
                func = child.func
                if isinstance(func, ast.Attribute) and func.attr in _ENVIRON_WRITES and is_environ(func.value):
                    found.append((name, child.lineno, f"os.environ.{func.attr}"))
                if isinstance(func, ast.Attribute) and func.attr in ("putenv", "unsetenv"):
                    found.append((name, child.lineno, f"os.{func.attr}"))
                if isinstance(func, ast.Name) and func.id in ("setattr", "delattr"):
                    found.append((name, child.lineno, func.id))
            visit(child, name)

    visit(tree, "<module>")
    return found


def test_no_hidden_switches_in_the_package():
    """Issue 28: no write of dema's DEMA_* switches (or any other variable) to os.environ and no
    monkeypatching in src/dema, except the allowed third-party settings above."""
    assert _hidden_switches(SRC / "dema" / "scan" / "triton_scan.py")  # the check sees what it looks for
    found = []
    for path in sorted((SRC / "dema").rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        found += [f"{relative}:{line} in {function}: {what}" for function, line, what in _hidden_switches(path)
                  if (relative, function) not in ALLOWED]
    assert not found, "hidden switches (scope a compute path with dema.scan.compute_paths instead):\n" + \
        "\n".join(found)
