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
