"""The one in-memory dataset type every loader produces: flat D4RL-style arrays.

All four formats (D4RL hdf5, Minari, Decision-Transformer pickles, DQN-replay) are read into the
same `OfflineDataset`: N transitions laid end to end, episodes delimited by `terminals` (the
environment ended the episode: no bootstrapping past it) and `timeouts` (the episode was cut by a
time limit or by the end of the data). Transition i is (observations[i], actions[i], rewards[i]),
and an episode ends AT index i when terminals[i] or timeouts[i] is set.

Shapes (N transitions):
    observations  (N, S) float32, or (N, H, W) uint8 for Atari frames (one frame per row)
    actions       (N, A) float32, or (N,) int64 for discrete actions
    rewards       (N,) float32
    terminals     (N,) bool
    timeouts      (N,) bool
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class OfflineDataset:
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)  # env id, recipe, ... as stored
    format: str = "d4rl"  # "d4rl" | "minari" | "dt-pickle" | "dqn-replay" | "memory"
    source: str = ""  # the file or folder it was read from
    next_observations: np.ndarray | None = None  # (N, S) when the file has them
    infos: dict[str, np.ndarray] = field(default_factory=dict)  # infos/* arrays, length N

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def discrete(self) -> bool:
        """True for integer actions (Atari): one index per step instead of a vector."""
        return self.actions.ndim == 1 and np.issubdtype(self.actions.dtype, np.integer)

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return tuple(self.observations.shape[1:])

    @property
    def obs_dim(self) -> int:
        """Size of one flattened observation (84*84 for a frame)."""
        return int(np.prod(self.obs_shape))

    @property
    def act_dim(self) -> int:
        """Action vector size; for discrete actions the number of actions."""
        return self.n_actions if self.discrete else int(self.actions.shape[1])

    @property
    def n_actions(self) -> int:
        """Number of discrete actions: from the metadata when recorded, else max index + 1."""
        if not self.discrete:
            raise ValueError("n_actions is defined for discrete actions only")
        if "n_actions" in self.metadata:
            return int(self.metadata["n_actions"])
        return int(self.actions.max()) + 1 if len(self) else 0

    @property
    def env_name(self) -> str | None:
        """Environment id recorded in the file ("Hopper-v5", "hopper-medium-v2"), if any."""
        for key in ("env_id", "env_name", "env", "dataset_id", "name"):
            value = self.metadata.get(key)
            if isinstance(value, str) and value:
                return value
        return None

    def episode_bounds(self) -> np.ndarray:
        """(E, 2) int64 [start, end) of every episode; the last one ends at N even if unfinished."""
        ends = np.flatnonzero(self.terminals | self.timeouts) + 1
        if len(ends) == 0 or ends[-1] != len(self):
            ends = np.append(ends, len(self))
        starts = np.concatenate([[0], ends[:-1]])
        return np.stack([starts, ends], axis=1).astype(np.int64)

    def content_sha256(self) -> str:
        """sha256 of the arrays training reads (names, dtypes, shapes and bytes): the same for the same
        data whatever the file's format, compression or path; different after any change of a value."""
        import hashlib

        digest = hashlib.sha256()
        for key in ("observations", "actions", "rewards", "terminals", "timeouts"):
            value = np.ascontiguousarray(getattr(self, key))
            digest.update(f"{key}|{value.dtype.str}|{value.shape}|".encode())
            digest.update(memoryview(value).cast("B"))
        return digest.hexdigest()

    def episode_returns(self) -> np.ndarray:
        """(E,) float64 undiscounted return of every episode."""
        bounds = self.episode_bounds()
        cumsum = np.concatenate([[0.0], np.cumsum(self.rewards, dtype=np.float64)])
        return cumsum[bounds[:, 1]] - cumsum[bounds[:, 0]]
