"""dema.provenance: the versions every dataset, benchmark and evaluation records, and the machine."""

from __future__ import annotations

import platform
from importlib import metadata

from dema.provenance import PACKAGES, machine, versions


def test_versions_has_python_and_the_installed_packages():
    v = versions()
    assert next(iter(v)) == "python" and v["python"] == platform.python_version()
    # the keys a collected dataset's `versions` metadata has always had (never renamed)
    assert {"dema", "numpy", "gymnasium", "mujoco", "h5py", "torch"} <= set(v)
    assert v["numpy"] == metadata.version("numpy")
    assert set(v) - {"python"} <= set(PACKAGES)
    assert all(isinstance(value, str) for value in v.values())


def test_machine_facts():
    m = machine()
    assert {"cpu", "cpu_count", "platform", "load_1min", "torch_threads", "malloc"} <= set(m)
    assert m["cpu_count"] >= 1 and m["torch_threads"] >= 1 and m["cpu"]


def test_the_commit_is_read_once_per_process(monkeypatch):
    """A pull into the checkout while a worker trains does not relabel what the worker imported."""
    import subprocess

    from dema import provenance

    provenance.git_commit.cache_clear()
    first = provenance.git_commit()
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, "f" * 40 + "\n", ""))
    assert provenance.git_commit() == first
    provenance.git_commit.cache_clear()
    assert provenance.git_commit().startswith("f" * 40)  # what a fresh process would read
    provenance.git_commit.cache_clear()
