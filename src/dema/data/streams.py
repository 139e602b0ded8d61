"""Batch streams for training: what the loop asks for its next batch, with an exact resume state.

`WindowStream` serves K-step windows sampled as Decision Transformer does (Transformer-like
models); `TrajectoryStream` serves whole trajectories, epoch after epoch (RNN-like DeMa). Both
reuse each batch `updates_per_batch` times and save/restore everything random about them, so a
resumed run draws the same batches as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import fields

from dema.data.batch import Batch


class WindowStream:
    """K-step windows from `TrajectoryDataset.sample`, each batch used `updates_per_batch` times."""

    def __init__(self, data, batch_size: int, updates_per_batch: int):
        self.data, self.batch_size, self.upb = data, batch_size, updates_per_batch
        self.batch: Batch | None = None
        self.uses_left = 0

    def next(self) -> Batch:
        if self.uses_left == 0:
            self.batch, self.uses_left = self.data.sample(self.batch_size), self.upb
        self.uses_left -= 1
        return self.batch

    def state_dict(self) -> dict:
        return {"rng": self.data.rng_state(), "uses_left": self.uses_left, "batch": _batch_dict(self.batch, self.uses_left)}

    def load_state_dict(self, state: dict) -> None:
        self.data.set_rng_state(state["rng"])
        self.uses_left, self.batch = state["uses_left"], _batch_from(state["batch"])


class TrajectoryStream:
    """Whole trajectories (RNN-like DeMa): epochs of `trajectory_batches`, several updates each.

    Resume: an epoch's order is drawn from the sampler's generator when the epoch starts, so the
    state is (generator state at the epoch's start, batches consumed); restoring replays the draw.
    """

    def __init__(self, data, batch_size: int, updates_per_batch: int):
        self.data, self.batch_size, self.upb = data, batch_size, updates_per_batch
        self.batch: Batch | None = None
        self.uses_left = 0
        self.epoch_rng: dict | None = None
        self.consumed = 0
        self._iter = None

    def _start_epoch(self) -> None:
        self.epoch_rng, self.consumed = self.data.rng_state(), 0
        self._iter = self.data.trajectory_batches(self.batch_size)

    def next(self) -> Batch:
        if self.uses_left == 0:
            if self._iter is None:
                self._start_epoch()
            batch = next(self._iter, None)
            if batch is None:  # epoch over: a new order
                self._start_epoch()
                batch = next(self._iter)
            self.batch, self.uses_left, self.consumed = batch, self.upb, self.consumed + 1
        self.uses_left -= 1
        return self.batch

    def state_dict(self) -> dict:
        return {"epoch_rng": self.epoch_rng, "consumed": self.consumed, "rng": self.data.rng_state(),
                "uses_left": self.uses_left, "batch": _batch_dict(self.batch, self.uses_left)}

    def load_state_dict(self, state: dict) -> None:
        self.uses_left, self.batch = state["uses_left"], _batch_from(state["batch"])
        if state["epoch_rng"] is None:
            self.data.set_rng_state(state["rng"])
            return
        self.data.set_rng_state(state["epoch_rng"])
        self._start_epoch()
        for _ in range(state["consumed"]):  # replay the epoch's draws up to where it stopped
            next(self._iter)
        self.consumed = state["consumed"]


def _batch_dict(batch: Batch | None, uses_left: int) -> dict | None:
    return {f.name: getattr(batch, f.name) for f in fields(Batch)} if batch is not None and uses_left else None


def _batch_from(data: dict | None) -> Batch | None:
    return Batch(**data) if data else None
