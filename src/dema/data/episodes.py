"""Episode returns and their statistics, from flat D4RL arrays: the one copy every caller uses.

An episode ends at a terminal or a timeout; the data's last row closes the last episode. The keys
`return_mean`, `return_std`, `return_min`, `return_max` (and those of `collection_stats`) are
written into the metadata of collected datasets, so files already collected carry them: add keys,
never rename them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def episode_returns(rewards: np.ndarray, terminals: np.ndarray, timeouts: np.ndarray) -> np.ndarray:
    """(E,) float64 sum of rewards per episode; episodes end at terminals or timeouts (the last at the end)."""
    ends = np.flatnonzero(np.asarray(terminals, bool) | np.asarray(timeouts, bool))
    if len(ends) == 0 or ends[-1] != len(rewards) - 1:
        ends = np.append(ends, len(rewards) - 1)
    csum = np.concatenate([[0.0], np.cumsum(rewards, dtype=np.float64)])
    starts = np.concatenate([[0], ends[:-1] + 1])
    return csum[ends + 1] - csum[starts]


def return_stats(returns: np.ndarray) -> dict[str, float]:
    """{"return_mean", "return_std", "return_min", "return_max"} of episode returns, as floats."""
    returns = np.asarray(returns)
    return {
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
    }


def collection_stats(data: dict[str, np.ndarray], normalize: Callable[[float], float] | None = None) -> dict:
    """What a collector records (`episode_stats`): episodes, transitions, terminal episodes, the
    return statistics, and `normalized_return_mean` (normalize(return_mean)) when a normaliser is given."""
    returns = episode_returns(data["rewards"], data["terminals"], data["timeouts"])
    stats = {
        "episodes": int(len(returns)),
        "transitions": int(len(data["rewards"])),
        "terminal_episodes": int(np.asarray(data["terminals"]).sum()),
        **return_stats(returns),
    }
    if normalize is not None:
        stats["normalized_return_mean"] = float(normalize(stats["return_mean"]))
    return stats


def returns_summary(returns: np.ndarray, normalize: Callable[[float], float]) -> dict[str, float]:
    """The return statistics of a dataset's episodes, raw and normalised (`normalized_return_mean`, ...):
    what run identities and records carry so a report can set scores beside the data's own."""
    normalised = np.array([normalize(float(r)) for r in returns])
    return {**return_stats(returns), **{f"normalized_{k}": v for k, v in return_stats(normalised).items()}}
