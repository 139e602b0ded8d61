"""Episodes, returns-to-go and K-step windows for sequence models (DT, DeMa, DC).

API (what the trainer uses):

    from dema.data.load import load_dataset
    from dema.data.trajectories import TrajectoryDataset

    data = TrajectoryDataset(load_dataset("hopper-medium-replay"), context_len=20,
                             reward_scale=1000.0, delayed=False, seed=0)
    batch = data.sample(64)                  # dema.data.batch.Batch of (64, 20) windows
    batch = data.sample(64, generator=rng)   # or with your own np.random.Generator / torch.Generator
    state = data.rng_state(); data.set_rng_state(state)   # resume exactly (JSON-able for numpy)
    for batch in data.trajectory_batches(8, max_len=None):  # whole episodes, one epoch, RNN-like
        ...                                  # (the epoch's order is drawn when called)
    data.state_mean, data.state_std          # (S,) float32, saved with the checkpoint for acting
    data.episodes                            # list[Episode(start, length, return_)]
    data.max_length, data.state_dim, data.act_dim
    data.n_actions                           # discrete (Atari) datasets only; a_{-1} = n_actions

Alignment and padding follow `dema.data.batch` exactly: per step t the tokens are
(R_t, a_{t-1}, s_t) with R_t = (sum_{t' >= t} r_{t'}) / reward_scale (it includes r_t),
a_{-1} = 0 (discrete: index n_actions), states are (s - state_mean) / state_std. Windows shorter
than K are LEFT-padded; every tensor is zero at padded positions and mask is False there.

Sampling, as Decision Transformer's gym code does: pick an episode with probability proportional
to its length, then a start uniformly in [0, length); the window is [start, min(start + K, length)),
so windows near an episode's end are short and padded. (DT draws the start the same way.)

Delayed rewards (`delayed=True`, the paper's sparse setting, DT's `--mode delayed`): every
episode's rewards are summed and moved to its last step, so R_t equals the episode return at
every step.

Image observations (Atari frames, uint8): state_mean 0 and state_std 255, so states lie in [0, 1];
with `frame_stack=F` each state is the last F frames of the episode, (B, K, F, H, W), frames before
the episode's first are zero. Timesteps are the step index within the episode, not clipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from dema.data.batch import Batch
from dema.data.dataset import OfflineDataset
from dema.data.validate import state_statistics
from dema.errors import DataError

Generator = np.random.Generator | torch.Generator


@dataclass(frozen=True)
class Episode:
    start: int  # index of its first transition in the flat dataset
    length: int
    return_: float  # undiscounted return of the ORIGINAL rewards (also when delayed)


class TrajectoryDataset:
    """Episodes of an `OfflineDataset` with returns-to-go, sampled as left-padded windows."""

    def __init__(
        self,
        dataset: OfflineDataset,
        context_len: int,
        reward_scale: float = 1000.0,
        delayed: bool = False,
        seed: int = 0,
        frame_stack: int = 1,
        state_mean: np.ndarray | None = None,
        state_std: np.ndarray | None = None,
    ):
        if context_len < 1:
            raise ValueError(f"context_len must be >= 1, got {context_len}")
        if len(dataset) == 0:
            raise DataError(f"{dataset.source or 'dataset'}: no transitions; nothing to train on")
        self.context_len = int(context_len)
        self.reward_scale = float(reward_scale)
        self.delayed = bool(delayed)
        self.frame_stack = int(frame_stack)
        self.discrete = dataset.discrete
        self.images = dataset.observations.dtype == np.uint8 and dataset.observations.ndim >= 3
        self.generator = np.random.default_rng(seed)

        bounds = dataset.episode_bounds()  # (E, 2) [start, end)
        self._ep_starts = bounds[:, 0].copy()
        self._ep_lengths = (bounds[:, 1] - bounds[:, 0]).copy()
        returns = dataset.episode_returns()
        self.episodes = [Episode(int(s), int(n), float(r)) for s, n, r in zip(self._ep_starts, self._ep_lengths, returns)]
        n = len(dataset)
        ep_of = np.repeat(np.arange(len(bounds)), self._ep_lengths)  # (N,) episode index of each step
        self._timesteps = np.arange(n, dtype=np.int64) - self._ep_starts[ep_of]
        self._step_ep_start = self._ep_starts[ep_of]  # (N,) first index of the step's episode

        # Returns-to-go: R_i = sum_{j=i}^{end-1} r_j = C[end] - C[i] with C the running sum.
        rewards = dataset.rewards.astype(np.float64)
        if self.delayed:
            rewards = np.zeros(n, dtype=np.float64)
            rewards[bounds[:, 1] - 1] = returns
        cumsum = np.concatenate([[0.0], np.cumsum(rewards)])
        ends = bounds[:, 1][ep_of]
        self._rtg = ((cumsum[ends] - cumsum[:-1]) / self.reward_scale).astype(np.float32)

        # States: normalised once here (vectors); frames stay uint8 and are scaled when gathered.
        if self.images:
            self.state_mean = np.zeros((), np.float32)
            self.state_std = np.full((), 255.0, np.float32)
            self._states = dataset.observations
        else:
            obs = dataset.observations.reshape(n, -1).astype(np.float32)
            mean, std = state_statistics(obs) if state_mean is None or state_std is None else (None, None)
            self.state_mean = mean if state_mean is None else np.asarray(state_mean, np.float32)
            # + 1e-6 as DT does, so constant features do not divide by zero
            self.state_std = std + 1e-6 if state_std is None else np.asarray(state_std, np.float32)
            with np.errstate(over="ignore", invalid="ignore"):  # overflowing statistics: training refuses them
                self._states = ((obs - self.state_mean) / self.state_std).astype(np.float32)

        # Actions and the previous action a_{t-1}, with a_{-1} = 0 (discrete: n_actions).
        if self.discrete:
            self.n_actions = dataset.n_actions
            if dataset.actions.min() < 0 or dataset.actions.max() >= self.n_actions:
                raise DataError(
                    f"{dataset.source or 'dataset'}: action indices span {dataset.actions.min()}..{dataset.actions.max()} "
                    f"but n_actions is {self.n_actions}. Fix: record the game's action count as metadata n_actions"
                )
            self._actions = dataset.actions.astype(np.int64)
            first_prev = self.n_actions
        else:
            self._actions = dataset.actions.astype(np.float32).reshape(n, -1)
            first_prev = 0.0
        self._prev_actions = np.roll(self._actions, 1, axis=0)
        self._prev_actions[self._ep_starts] = first_prev
        self.act_dim = self.n_actions if self.discrete else self._actions.shape[1]
        self.state_dim = int(np.prod(dataset.obs_shape))

        self.max_length = int(self._ep_lengths.max())  # longest episode (timestep embedding size)

        # Sampling weights: episode ~ length, as DT's `p_sample = traj_lens / sum(traj_lens)`.
        self._weights = self._ep_lengths / self._ep_lengths.sum()

    # ----------------------------------------------------------------- sampling

    def __len__(self) -> int:
        return len(self.episodes)

    def sample(self, batch_size: int, generator: Generator | None = None) -> Batch:
        """`batch_size` windows of `context_len` steps: episode ~ length, start ~ uniform."""
        episodes, starts = self.draw(batch_size, generator)
        lengths = np.minimum(self.context_len, self._ep_lengths[episodes] - starts)
        return self._gather(self._ep_starts[episodes] + starts, lengths, self.context_len)

    def draw(self, batch_size: int, generator: Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The (episode index, start step) pairs that `sample` turns into windows, (B,) each."""
        generator = self.generator if generator is None else generator
        if isinstance(generator, torch.Generator):
            weights = torch.as_tensor(self._weights, dtype=torch.float64)
            episodes = torch.multinomial(weights, batch_size, replacement=True, generator=generator).numpy()
            u = torch.rand(batch_size, generator=generator, dtype=torch.float64).numpy()
            starts = np.minimum((u * self._ep_lengths[episodes]).astype(np.int64), self._ep_lengths[episodes] - 1)
        else:
            episodes = generator.choice(len(self._weights), size=batch_size, p=self._weights)
            starts = generator.integers(0, self._ep_lengths[episodes])
        return episodes.astype(np.int64), starts.astype(np.int64)

    def window(self, episode: int, start: int) -> Batch:
        """The one window `sample` would build for (episode, start), as a batch of 1."""
        length = min(self.context_len, int(self._ep_lengths[episode]) - start)
        if not 0 <= start < self._ep_lengths[episode]:
            raise IndexError(f"start {start} outside episode {episode} of length {self._ep_lengths[episode]}")
        return self._gather(np.array([self._ep_starts[episode] + start]), np.array([length]), self.context_len)

    def trajectory_batches(
        self,
        batch_size: int,
        generator: Generator | None = None,
        max_len: int | None = None,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        """One epoch of whole episodes in random order, for RNN-like training.

        Each batch is right-aligned and left-padded to its longest member (so the last real step
        sits at the last position). With `max_len`, episodes are first cut into consecutive chunks
        of at most `max_len` steps (timesteps and returns-to-go continue across chunks; a model
        that should carry its state across chunks must do so itself). The epoch's order is drawn
        from the generator when this is CALLED (not lazily at the first batch), so the sampler's
        state before the call determines the whole epoch.
        """
        generator = self.generator if generator is None else generator
        items = []  # (global start, length)
        for start, length in zip(self._ep_starts, self._ep_lengths):
            step = int(length) if max_len is None else int(max_len)
            items += [(start + c, min(step, length - c)) for c in range(0, int(length), step)]
        items = np.asarray(items, dtype=np.int64)  # (M, 2)
        if isinstance(generator, torch.Generator):
            order = torch.randperm(len(items), generator=generator).numpy()
        else:
            order = generator.permutation(len(items))
        return self._epoch(items[order], batch_size, drop_last)

    def _epoch(self, items: np.ndarray, batch_size: int, drop_last: bool) -> Iterator[Batch]:
        for i in range(0, len(items), batch_size):
            chosen = items[i : i + batch_size]
            if drop_last and len(chosen) < batch_size:
                return
            yield self._gather(chosen[:, 0], chosen[:, 1], int(chosen[:, 1].max()))

    # ----------------------------------------------------------------- RNG state (training resume)

    def rng_state(self) -> dict:
        """The internal sampler's state (a JSON-able dict); `set_rng_state` restores it."""
        return self.generator.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        self.generator.bit_generator.state = state

    # ----------------------------------------------------------------- gathering

    def _gather(self, first: np.ndarray, lengths: np.ndarray, width: int) -> Batch:
        """Windows [first_b, first_b + lengths_b) of the flat arrays, LEFT-padded to `width`."""
        positions = np.arange(width)[None, :]  # (1, K)
        pad = (width - lengths)[:, None]  # (B, 1)
        mask = positions >= pad  # (B, K): real steps sit at the right end
        index = np.where(mask, first[:, None] + positions - pad, 0)  # (B, K) flat index, 0 at pads

        states = self._frames(index, mask) if self.images else self._states[index]
        actions, prev_actions = self._actions[index], self._prev_actions[index]
        states = np.where(_expand(mask, states.ndim), states, 0)  # zero at padded positions
        actions = np.where(_expand(mask, actions.ndim), actions, 0).astype(actions.dtype)
        prev_actions = np.where(_expand(mask, prev_actions.ndim), prev_actions, 0).astype(prev_actions.dtype)
        return Batch(
            states=torch.from_numpy(np.ascontiguousarray(states, dtype=np.float32)),
            actions=torch.from_numpy(np.ascontiguousarray(actions)),
            prev_actions=torch.from_numpy(np.ascontiguousarray(prev_actions)),
            returns_to_go=torch.from_numpy(np.where(mask, self._rtg[index], np.float32(0)))[..., None],  # (B, K) -> (B, K, 1)
            timesteps=torch.from_numpy(self._timesteps[index] * mask),
            mask=torch.from_numpy(mask),
        )

    def _frames(self, index: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(B, K, H, W) frames in [0, 1]; with frame_stack F, (B, K, F, H, W), zeros before the start."""
        if self.frame_stack == 1:
            return self._states[index].astype(np.float32) / self.state_std
        offsets = np.arange(self.frame_stack - 1, -1, -1)  # F-1 .. 0 steps back, oldest first
        stacked = index[..., None] - offsets  # (B, K, F)
        inside = stacked >= self._step_ep_start[index][..., None]  # frame belongs to the episode
        frames = self._states[np.where(inside, stacked, 0)].astype(np.float32) / self.state_std
        return np.where(inside[..., None, None], frames, np.float32(0))  # (B, K, F, H, W)


def _expand(mask: np.ndarray, ndim: int) -> np.ndarray:
    """(B, K) mask -> broadcastable to an array of `ndim` dims."""
    return mask.reshape(mask.shape + (1,) * (ndim - 2))
