"""Where the collector tests find the shared behaviour policies, and the skip when they are absent."""

import os
from pathlib import Path

import pytest


def _shared() -> Path:
    if os.environ.get("DEMA_SHARED"):
        return Path(os.environ["DEMA_SHARED"])
    return Path(__file__).resolve().parents[2] / ".." / "shared"


POLICY_DIR = _shared() / "data" / "behavior-policies"
needs_policies = pytest.mark.skipif(
    not POLICY_DIR.is_dir(), reason=f"behaviour policies not found at {POLICY_DIR} (set DEMA_SHARED)"
)
