"""A trained run read back for an analysis: the run's record and its policy, or one clear error.

`load_trained(run_dir, checkpoint)` turns every way a run directory can be unusable (not a run, a
missing checkpoint, a corrupt or mismatched weights file) into a `DemaError` naming the file, so
the analysis commands print one line and exit 2 instead of a traceback.
"""

from __future__ import annotations

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
