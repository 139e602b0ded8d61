"""A trained run read back for an analysis: the run's record and its policy, or one clear error.

`load_trained(run_dir, checkpoint)` turns every way a run directory can be unusable (not a run, a
missing checkpoint, a corrupt or mismatched weights file) into a `DemaError` naming the file, so
the analysis commands print one line and exit 2 instead of a traceback.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from dema.errors import DemaError
from dema.run import CHECKPOINTS, LoadedRun, RunDir


def load_trained(run_dir, checkpoint: str = "final", device: str = "cpu") -> tuple[LoadedRun, object]:
    """(the run, its policy in eval mode); `checkpoint` is "final", "best" or a file inside the run."""
    from dema.evaluation.evaluate import load_policy

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DemaError(f"{run_dir} is not a directory; give a run directory written by `dema train`")
    run = RunDir(run_dir).load()
    weights = run_dir / CHECKPOINTS.get(checkpoint, checkpoint)
    try:
        policy = load_policy(run, weights, device)
    except DemaError:
        raise
    except Exception as exc:  # safetensors' own error, a state-dict mismatch, an unreadable file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DemaError(f"{weights}: cannot load the checkpoint ({type(exc).__name__}: {reason[:200]})") from None
    return run, policy.eval()


def check_writable(folder, option: str = "--out") -> None:
    """An output folder the analysis cannot write into (read-only, or under a file) is one line before
    the work, not a traceback after minutes of rollouts. The folder need not exist yet: its nearest
    existing parent must take it. Writing is tried (a temporary file, gone at once), since permission
    bits say nothing for root or a read-only mount."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DemaError(f"cannot write into {folder}: {existing} is not a folder. Give another {option}")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise DemaError(f"cannot write into {folder}: {existing} is not writable ({exc.strerror or exc}). Give "
                        f"another {option} (a folder you can write), or fix the folder's permissions") from None
