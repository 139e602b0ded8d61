"""TrajectoryDataset against naive Python loops: returns-to-go, padding, sampling weights, delays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_factories import make_arrays

from dema.data.dataset import OfflineDataset
from dema.data.trajectories import TrajectoryDataset
from dema.errors import DataError

LENGTHS = (5, 9, 1, 13, 3)


def dataset(lengths=LENGTHS, obs_dim=3, act_dim=2, seed=0) -> OfflineDataset:
    a = make_arrays(lengths, obs_dim=obs_dim, act_dim=act_dim, seed=seed)
    return OfflineDataset(a["observations"], a["actions"], a["rewards"], a["terminals"], a["timeouts"], format="memory")


def naive_episodes(ds: OfflineDataset) -> list[dict]:
    """Split by walking the flags one step at a time."""
    episodes, current = [], {"s": [], "a": [], "r": []}
    for i in range(len(ds)):
        current["s"].append(ds.observations[i])
        current["a"].append(ds.actions[i])
        current["r"].append(float(ds.rewards[i]))
        if ds.terminals[i] or ds.timeouts[i] or i == len(ds) - 1:
            episodes.append({k: np.array(v) for k, v in current.items()})
            current = {"s": [], "a": [], "r": []}
    return episodes


def naive_rtg(rewards, scale):
    out = []
    for t in range(len(rewards)):
        total = 0.0
        for r in rewards[t:]:
            total += r
        out.append(total / scale)
    return out


def naive_window(ep, start, K, mean, std, scale, rewards=None):
    """The window the padding contract in dema/data/batch.py describes, built step by step."""
    rewards = ep["r"] if rewards is None else rewards
    rtg = naive_rtg(rewards, scale)
    steps = list(range(start, min(start + K, len(ep["r"]))))
    pad = K - len(steps)
    S, A = ep["s"].shape[1], ep["a"].shape[1]
    states = [np.zeros(S)] * pad + [(ep["s"][t] - mean) / std for t in steps]
    actions = [np.zeros(A)] * pad + [ep["a"][t] for t in steps]
    prev = [np.zeros(A)] * pad + [ep["a"][t - 1] if t > 0 else np.zeros(A) for t in steps]
    returns = [0.0] * pad + [rtg[t] for t in steps]
    timesteps = [0] * pad + steps
    mask = [False] * pad + [True] * len(steps)
    return np.array(states), np.array(actions), np.array(prev), np.array(returns), np.array(timesteps), np.array(mask)


def check_window(batch, row, expected):
    states, actions, prev, returns, timesteps, mask = expected
    np.testing.assert_allclose(batch.states[row].numpy(), states, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(batch.actions[row].numpy(), actions, rtol=1e-6)
    np.testing.assert_allclose(batch.prev_actions[row].numpy(), prev, rtol=1e-6)
    np.testing.assert_allclose(batch.returns_to_go[row, :, 0].numpy(), returns, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(batch.timesteps[row].numpy(), timesteps)
    np.testing.assert_array_equal(batch.mask[row].numpy(), mask)


@pytest.mark.parametrize("K", [1, 4, 20])
def test_every_window_matches_the_naive_reference(K):
    ds = dataset()
    data = TrajectoryDataset(ds, context_len=K, reward_scale=7.0)
    mean, std = ds.observations.mean(0), ds.observations.std(0) + 1e-6
    np.testing.assert_allclose(data.state_mean, mean, rtol=1e-5)
    np.testing.assert_allclose(data.state_std, std, rtol=1e-5)
    for e, ep in enumerate(naive_episodes(ds)):
        assert data.episodes[e].length == len(ep["r"])
        for start in range(len(ep["r"])):
            batch = data.window(e, start)
            assert batch.states.shape == (1, K, 3) and batch.actions.dtype == torch.float32
            check_window(batch, 0, naive_window(ep, start, K, mean, std, 7.0))


def test_sample_builds_the_windows_it_drew():
    ds = dataset()
    data = TrajectoryDataset(ds, context_len=6, reward_scale=1000.0)
    rng = np.random.default_rng(5)
    episodes, starts = data.draw(32, np.random.default_rng(5))
    batch = data.sample(32, rng)
    eps = naive_episodes(ds)
    for row, (e, s) in enumerate(zip(episodes, starts)):
        check_window(batch, row, naive_window(eps[e], s, 6, data.state_mean, data.state_std, 1000.0))


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_sampling_weights_proportional_to_length_and_uniform_start(kind):
    data = TrajectoryDataset(dataset(), context_len=4)
    gen = np.random.default_rng(0) if kind == "numpy" else torch.Generator().manual_seed(0)
    draws = 60_000
    episodes, starts = data.draw(draws, gen)
    # naive expectation: P(episode) = length / total, then each start equally likely
    total = sum(LENGTHS)
    freq = np.bincount(episodes, minlength=len(LENGTHS)) / draws
    np.testing.assert_allclose(freq, np.array(LENGTHS) / total, atol=0.01)
    longest = int(np.argmax(LENGTHS))
    start_freq = np.bincount(starts[episodes == longest], minlength=LENGTHS[longest]) / (episodes == longest).sum()
    np.testing.assert_allclose(start_freq, np.full(LENGTHS[longest], 1 / LENGTHS[longest]), atol=0.02)
    assert all(0 <= s < LENGTHS[e] for e, s in zip(episodes[:1000], starts[:1000]))


def test_delayed_rewards_moved_to_the_last_step():
    ds = dataset()
    data = TrajectoryDataset(ds, context_len=5, reward_scale=10.0, delayed=True)
    mean, std = data.state_mean, data.state_std
    for e, ep in enumerate(naive_episodes(ds)):
        delayed = [0.0] * (len(ep["r"]) - 1) + [sum(ep["r"])]
        assert data.episodes[e].return_ == pytest.approx(sum(ep["r"]), rel=1e-5)
        for start in range(len(ep["r"])):
            batch = data.window(e, start)
            check_window(batch, 0, naive_window(ep, start, 5, mean, std, 10.0, rewards=delayed))
            # every real step's return-to-go is the whole episode's return
            real = batch.returns_to_go[0, batch.mask[0], 0].numpy()
            np.testing.assert_allclose(real, sum(ep["r"]) / 10.0, rtol=1e-5)


def test_discrete_actions_previous_action_reserved_index():
    a = make_arrays(LENGTHS)
    actions = np.random.default_rng(0).integers(0, 5, size=len(a["rewards"]))
    ds = OfflineDataset(a["observations"], actions, a["rewards"], a["terminals"], a["timeouts"], metadata={"n_actions": 6})
    data = TrajectoryDataset(ds, context_len=4)
    assert data.n_actions == 6 and data.act_dim == 6
    for e, ep in enumerate(naive_episodes(ds)):
        for start in range(len(ep["r"])):
            batch = data.window(e, start)
            assert batch.actions.dtype == torch.long and batch.actions.shape == (1, 4)
            steps = list(range(start, min(start + 4, len(ep["r"]))))
            pad = 4 - len(steps)
            expected_prev = [0] * pad + [int(ep["a"][t - 1]) if t > 0 else 6 for t in steps]  # a_{-1} = n_actions
            expected_act = [0] * pad + [int(ep["a"][t]) for t in steps]
            assert batch.prev_actions[0].tolist() == expected_prev
            assert batch.actions[0].tolist() == expected_act


def test_discrete_action_index_outside_n_actions_is_refused():
    a = make_arrays(LENGTHS)
    actions = np.full(len(a["rewards"]), 6)
    ds = OfflineDataset(a["observations"], actions, a["rewards"], a["terminals"], a["timeouts"], metadata={"n_actions": 6}, source="x.pkl")
    with pytest.raises(DataError, match="x.pkl: action indices span 6..6 but n_actions is 6"):
        TrajectoryDataset(ds, context_len=4)


def test_whole_trajectory_batches_cover_every_episode_once_right_aligned():
    ds = dataset()
    data = TrajectoryDataset(ds, context_len=4, reward_scale=3.0)
    eps = naive_episodes(ds)
    seen = []
    for batch in data.trajectory_batches(2, np.random.default_rng(1)):
        width = batch.length
        assert width == int(batch.mask.sum(1).max())  # padded to the longest in the batch
        for row in range(batch.batch_size):
            n = int(batch.mask[row].sum())
            assert batch.mask[row, width - n :].all()  # right-aligned: real steps at the end
            e = next(i for i, ep in enumerate(eps) if len(ep["r"]) == n and i not in seen)
            check_window(batch, row, naive_window(eps[e], 0, width, data.state_mean, data.state_std, 3.0))
            seen.append(e)
    assert sorted(seen) == list(range(len(LENGTHS)))
    # the order is drawn at the call: the generator state right before it fixes the whole epoch
    data.set_rng_state(np.random.default_rng(3).bit_generator.state)
    epoch = data.trajectory_batches(2)
    after_call = data.rng_state()
    data.set_rng_state(np.random.default_rng(3).bit_generator.state)
    replay = data.trajectory_batches(2)
    assert data.rng_state() == after_call
    for a, b in zip(epoch, replay):
        assert torch.equal(a.states, b.states)


def test_whole_trajectory_chunks_continue_timesteps_and_returns():
    ds = dataset(lengths=(13,))
    data = TrajectoryDataset(ds, context_len=4, reward_scale=1.0)
    chunks = list(data.trajectory_batches(10, np.random.default_rng(0), max_len=5))
    assert len(chunks) == 1 and chunks[0].batch_size == 3  # 5 + 5 + 3
    batch = chunks[0]
    got = sorted(batch.timesteps[batch.mask].tolist())
    assert got == list(range(13))
    rtg = naive_rtg(naive_episodes(ds)[0]["r"], 1.0)
    for row in range(3):
        ts = batch.timesteps[row][batch.mask[row]].numpy()
        np.testing.assert_allclose(batch.returns_to_go[row, batch.mask[row], 0].numpy(), np.array(rtg)[ts], rtol=1e-5, atol=1e-6)


def test_rng_state_resume_reproduces_the_same_batches():
    data = TrajectoryDataset(dataset(), context_len=4, seed=123)
    data.sample(8)
    state = data.rng_state()
    first = [data.sample(8) for _ in range(3)]
    again = TrajectoryDataset(dataset(), context_len=4, seed=999)
    again.set_rng_state(state)
    for a, b in zip(first, [again.sample(8) for _ in range(3)]):
        assert torch.equal(a.states, b.states) and torch.equal(a.timesteps, b.timesteps)
    # a torch.Generator given by the caller is reproducible the same way
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    assert torch.equal(data.sample(16, g1).returns_to_go, data.sample(16, g2).returns_to_go)


def test_image_frames_scaled_and_stacked_within_the_episode():
    lengths = (3, 4)
    n = sum(lengths)
    frames = np.arange(n, dtype=np.uint8)[:, None, None] * np.ones((1, 2, 2), np.uint8) * 10  # frame i = 10*i
    a = make_arrays(lengths)
    ds = OfflineDataset(frames, np.zeros(n, np.int64), a["rewards"], a["terminals"], a["timeouts"], metadata={"n_actions": 3})
    data = TrajectoryDataset(ds, context_len=3, frame_stack=2)
    batch = data.window(1, 0)  # episode 1 = flat steps 3..6, window steps 0..2
    assert batch.states.shape == (1, 3, 2, 2, 2)  # (B, K, F, H, W)
    firsts = batch.states[0, :, :, 0, 0] * 255  # (K, F): oldest frame first
    np.testing.assert_allclose(firsts.numpy(), [[0, 30], [30, 40], [40, 50]], atol=1e-4)  # no frame from episode 0
