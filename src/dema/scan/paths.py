"""The compute paths: which kernels run, as one value, read once from the environment, scoped in code.

Three choices, each a fast path beside the reference it is tested against:

- `scan`, the selective scan of every scan entry point (`dema.scan.selective_scan_fn`,
  `dema.scan.stateful.selective_scan_with_state`): "" (chosen per call from the tensors and what is
  installed, see `dema.scan.scan_backend`), or one forced: "ref" (the sequential reference), "numba"
  (the CPU kernel), "torch" (pure PyTorch, one autograd node with an analytic backward), "gpu" (Triton).
- `ssm`, how `SelectiveSSM.forward` runs (dema.models.mamba): "node" (the default: the whole SSM,
  conv to scan, as one Numba autograd node, `dema.scan.numba_ssm`, where the scan is the Numba
  kernel; elsewhere the plain forward) or "ref" (always the plain PyTorch forward).
- `fused_step`, how a Mamba policy acts on the CPU (dema.evaluation's agents): True (the default)
  takes the fused step, the whole decision through every layer as one Numba call
  (`dema.scan.fused_step`), where it covers the policy; False acts through `SequencePolicy.step`
  and `predict_last`.

"Fused" means that last one only. Before issue 28 it also named the `torch` scan and the SSM node;
those old names stay accepted: DEMA_SCAN=fused is `torch`, DEMA_SSM=fused is `node`.

Users set the defaults with environment variables, DEMA_SCAN, DEMA_SSM and DEMA_FUSED_STEP (0 or
1), read once, when a path is first asked for (`current_paths`); a value that names no path is a
ConfigError (one line, exit 2). Code that needs another path (an analysis, a benchmark, a test)
scopes it:

    with compute_paths(scan="ref"):
        ...

The scope is a context variable: it holds inside the block, in this thread (or asyncio task) only,
and is never written back to os.environ, so other threads and the code after the block keep their
paths. A thread started inside the block begins at the environment's defaults (each thread has its
own context); run it with `contextvars.copy_context().run` to carry the scope over.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

from dema.errors import ConfigError

__all__ = ["ComputePaths", "compute_paths", "current_paths", "canonical_record", "SCANS", "SSM_PATHS", "VARIABLES",
           "INSTALL"]

SCANS = ("numba", "torch", "ref", "gpu")  # what `scan` (DEMA_SCAN) may name; "" = chosen per call
SSM_PATHS = ("node", "ref")  # what `ssm` (DEMA_SSM) may name
OLD_NAMES = {"scan": {"fused": "torch"}, "ssm": {"fused": "node"}}  # the names before issue 28
VARIABLES = {"scan": "DEMA_SCAN", "ssm": "DEMA_SSM", "fused_step": "DEMA_FUSED_STEP"}
INSTALL = {"numba": "pip install numba", "gpu": 'pip install "dema[gpu]" (Triton)'}


def _scan_name(value: str, label: str) -> str:
    name = value.strip().lower()
    name = OLD_NAMES["scan"].get(name, name)
    if name and name not in SCANS:
        raise ConfigError(f"{label}={value!r} is not a scan; use one of {', '.join(SCANS)} (fused: torch's old "
                          f"name; numba: {INSTALL['numba']}; gpu: {INSTALL['gpu']}), or leave it unset")
    return name


def _ssm_name(value: str, label: str) -> str:
    name = value.strip().lower() or "node"
    name = OLD_NAMES["ssm"].get(name, name)
    if name not in SSM_PATHS:
        raise ConfigError(f"{label}={value!r} is not an SSM path; use one of {', '.join(SSM_PATHS)} "
                          "(fused: node's old name), or leave it unset")
    return name


@dataclass(frozen=True)
class ComputePaths:
    """Which kernels run (see the module docstring); names are checked and old names made current."""

    scan: str = ""  # "" (per call) or one of SCANS
    ssm: str = "node"  # one of SSM_PATHS
    fused_step: bool = True

    def __post_init__(self):
        object.__setattr__(self, "scan", _scan_name(self.scan, "scan"))
        object.__setattr__(self, "ssm", _ssm_name(self.ssm, "ssm"))
        if not isinstance(self.fused_step, bool):
            raise ConfigError(f"fused_step={self.fused_step!r} is not True or False")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> ComputePaths:
        """The paths DEMA_SCAN, DEMA_SSM and DEMA_FUSED_STEP name in `environ` (unset: the defaults)."""
        step = environ.get("DEMA_FUSED_STEP", "").strip()
        if step not in ("", "0", "1"):
            raise ConfigError(f"DEMA_FUSED_STEP={step!r} is not 0 or 1: 0 acts through SequencePolicy.step, "
                              "1 (the default) through the fused step where it covers the policy")
        return cls(scan=_scan_name(environ.get("DEMA_SCAN", ""), "DEMA_SCAN"),
                   ssm=_ssm_name(environ.get("DEMA_SSM", ""), "DEMA_SSM"),
                   fused_step=step != "0")

    def record(self) -> dict[str, str]:
        """The paths as the environment variables that set them ('' for a default): what a run
        records of its compute path, and `from_environment` reads back."""
        return {"DEMA_SCAN": self.scan, "DEMA_SSM": "" if self.ssm == "node" else self.ssm,
                "DEMA_FUSED_STEP": "" if self.fused_step else "0"}


def canonical_record(record: Mapping[str, str]) -> dict[str, str]:
    """A recorded compute path (a run's, see `ComputePaths.record`) in today's names, e.g.
    DEMA_SCAN=fused as torch and DEMA_FUSED_STEP=1 as '' (the default), so that a record is compared
    by the paths it names, not their spelling; other keys as they are, a record that names no
    path as it is."""
    names = {name: record[name] for name in VARIABLES.values() if name in record}
    try:
        current = ComputePaths.from_environment(names).record()
    except ConfigError:
        return dict(record)
    return {**record, **{name: current[name] for name in names}}


_SCOPED: contextvars.ContextVar[ComputePaths | None] = contextvars.ContextVar("dema_compute_paths", default=None)


@functools.cache
def _from_environment() -> ComputePaths:
    # Read once: a process's defaults do not change under it. A bad value raises, and is not cached.
    return ComputePaths.from_environment(os.environ)


def current_paths() -> ComputePaths:
    """The paths in force here: the innermost `compute_paths` scope, else the environment's."""
    scoped = _SCOPED.get()
    return scoped if scoped is not None else _from_environment()


@contextlib.contextmanager
def compute_paths(**changes) -> Iterator[ComputePaths]:
    """Within this block (this thread or task only) the current paths with `changes`, e.g.
    `compute_paths(scan="ref")`, `compute_paths(fused_step=False)`; scopes nest, and each restores
    the paths it found on exit."""
    token = _SCOPED.set(replace(current_paths(), **changes))
    try:
        yield _SCOPED.get()
    finally:
        _SCOPED.reset(token)
