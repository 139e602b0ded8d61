"""The token order switch: r-aprev-s (R_t, a_{t-1}, s_t) and Decision Transformer's r-s-a (R_t, s_t, a_t).

In r-s-a the a_t token carries `batch.actions`, the training targets, so the tests below check
that the prediction of a_t never depends on a_t or later actions (the loss cannot leak), that
it does depend on a_{t-1} (DT's s_t sees the previous step's action token), and that acting on
a window (`WindowAgent`) equals the full forward on the same trajectory's dataset windows.
"""

import dataclasses
import types

import numpy as np
import pytest
import torch

from dema.data.dataset import OfflineDataset
from dema.data.trajectories import TrajectoryDataset
from dema.errors import ConfigError
from dema.evaluation.agent import TanhHead, WindowAgent
from dema.models import build_policy
from dema.models.config import ModelConfig, TokenLayout, TokenOrder

from tiny_models import garbage_left_padded, ACT_DIM, STATE_DIM, random_batch, tiny_config, tiny_policy

RSA = TokenOrder.RETURN_STATE_ACTION
RAS = TokenOrder.RETURN_PREV_ACTION_STATE
# every B3LD mixer in DT's order: attention, convolution, Mamba (pre and post up-projection)
RSA_MODELS = ["dt", "dc", "dema", "dema-post"]


def rsa_policy(model, **overrides):
    return tiny_policy(model, token_order=RSA, **overrides)


def shaken(policy, std=0.3, seed=7):
    """The policy with every parameter moved by N(0, std): GPT-2's small initialisation makes the
    tiny models nearly insensitive to their inputs, which would hide a wrong window."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)
    return policy


# ------------------------------------------------------------------------------------ config
def test_default_order_and_values():
    assert ModelConfig().token_order is RAS
    assert RAS.value == "r-aprev-s" and RSA.value == "r-s-a"


def test_old_config_json_without_the_key_loads_with_the_default():
    old = ModelConfig().to_dict()
    del old["token_order"]
    assert ModelConfig.from_dict(old).token_order is RAS


def test_round_trip_and_bad_value():
    cfg = tiny_config("dt", token_order=RSA)
    data = cfg.to_dict()
    assert data["token_order"] == "r-s-a"
    assert ModelConfig.from_dict(data) == cfg
    with pytest.raises(ConfigError, match="token_order='s-r-a' is not one of"):
        ModelConfig.from_dict({**data, "token_order": "s-r-a"})


@pytest.mark.parametrize("layout", [TokenLayout.BL3D, TokenLayout.STATE_ONLY])
def test_rsa_needs_b3ld(layout):
    with pytest.raises(ConfigError, match="token_order='r-s-a' needs layout='b3ld'"):
        ModelConfig(layout=layout, token_order=RSA)
    ModelConfig(layout=layout, token_order=RAS)  # today's order is fine with every layout


def test_rsa_refuses_recurrent_acting():
    with pytest.raises(ConfigError, match="recurrent=True acts step by step"):
        ModelConfig(recurrent=True, token_order=RSA)


# ------------------------------------------------------------------------------------ causality
def _with_actions(batch, actions):
    return dataclasses.replace(batch, actions=actions)


@pytest.mark.parametrize("model", RSA_MODELS)
def test_prediction_of_a_t_never_sees_a_t_or_later(model):
    """Perturbing actions at steps >= t leaves predictions at steps <= t unchanged (exactly), and
    the gradient of the prediction at t with respect to actions at steps >= t is exactly zero."""
    policy = shaken(rsa_policy(model))
    batch = random_batch(length=6)
    base = policy(batch)
    for t in range(batch.length):
        actions = batch.actions.clone()
        actions[:, t:] += torch.linspace(1.0, 3.0, ACT_DIM, dtype=actions.dtype)
        changed = policy(_with_actions(batch, actions))
        assert torch.equal(changed[:, : t + 1], base[:, : t + 1]), f"{model}: step {t} sees a_t or a later action"
        if t + 1 < batch.length:
            assert not torch.allclose(changed[:, t + 1:], base[:, t + 1:])

        leaf = batch.actions.clone().requires_grad_(True)
        policy(_with_actions(batch, leaf))[:, t].sum().backward()
        assert torch.all(leaf.grad[:, t:] == 0), f"{model}: gradient flows from a_{{>=t}} into the prediction at t"
        if t > 0:
            assert leaf.grad[:, t - 1].abs().sum() > 0


@pytest.mark.parametrize("model", RSA_MODELS)
def test_prediction_of_a_t_sees_a_t_minus_1(model):
    policy = shaken(rsa_policy(model))
    batch = random_batch(length=6)
    base = policy(batch)
    for t in range(1, batch.length):
        actions = batch.actions.clone()
        actions[:, t - 1] = -actions[:, t - 1] + 0.5
        changed = policy(_with_actions(batch, actions))
        assert torch.equal(changed[:, :t], base[:, :t])
        assert not torch.allclose(changed[:, t], base[:, t]), f"{model}: step {t} does not see a_{{t-1}}"


@pytest.mark.parametrize("model", RSA_MODELS)
def test_rsa_ignores_prev_actions_and_the_loss_cannot_leak(model):
    policy = shaken(rsa_policy(model))
    batch = random_batch(length=6)
    shuffled = dataclasses.replace(batch, prev_actions=torch.randn_like(batch.prev_actions) * 3)
    assert torch.equal(policy(shuffled), policy(batch))
    # The loss itself: changing the last target a_{K-1} (also the last a token) leaves every
    # prediction as it was, so the loss is the MSE of the unchanged predictions to the new targets.
    actions = batch.actions.clone()
    actions[:, -1] = 0.7
    preds = policy(batch)
    expected = (preds - actions).square().mean(-1)[batch.mask].mean()
    torch.testing.assert_close(policy.loss(_with_actions(batch, actions)), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("model", RSA_MODELS)
def test_rsa_ignores_garbage_in_the_padding(model):
    policy = rsa_policy(model)
    real = random_batch(batch_size=1, length=4, start=7)
    pad = 3
    padded = garbage_left_padded(real, pad)
    torch.testing.assert_close(policy(padded)[:, pad:], policy(real), rtol=1e-10, atol=1e-12)


def test_orders_differ_on_the_same_weights():
    rsa, ras = rsa_policy("dt"), tiny_policy("dt", token_order=RAS)
    ras.load_state_dict(rsa.state_dict())
    batch = random_batch()
    assert not torch.allclose(rsa(batch), ras(batch))
    hidden, mask = rsa.hidden_states(batch)
    assert hidden.shape[1] == mask.shape[1] == 3 * batch.length


@pytest.mark.parametrize("model", ["dema", "dema-post"])
def test_rsa_refuses_to_step(model):
    policy = rsa_policy(model)
    assert not policy.supports_step
    with pytest.raises(ConfigError, match="token order r-s-a cannot act step by step"):
        policy.init_cache(1)
    batch = random_batch()
    with pytest.raises(ConfigError, match="token order r-s-a cannot act step by step"):
        policy.step(batch.states[:, 0], batch.prev_actions[:, 0], batch.returns_to_go[:, 0], batch.timesteps[:, 0],
                    cache=[])


# ------------------------------------------------------------------------------------ discrete
def _discrete_batch(n_actions, length=6, seed=2):
    g = torch.Generator().manual_seed(seed)
    batch = random_batch(length=length, dtype=torch.float64)
    batch.actions = torch.randint(0, n_actions, (2, length), generator=g)
    batch.prev_actions = torch.randint(0, n_actions + 1, (2, length), generator=g)
    return batch


def test_discrete_rsa_shapes_causality_and_loss():
    n_actions = 4
    torch.manual_seed(0)
    policy = build_policy(tiny_config("dt", token_order=RSA), STATE_DIM, n_actions, discrete=True).double().eval()
    batch = _discrete_batch(n_actions)
    base = policy(batch)
    assert base.shape == (2, 6, n_actions)
    for t in range(batch.length):
        later = batch.actions.clone()
        later[:, t:] = (later[:, t:] + 1) % n_actions
        changed = policy(_with_actions(batch, later))
        assert torch.equal(changed[:, : t + 1], base[:, : t + 1])
        # the reserved index act_dim (padding / "not taken yet") at steps >= t changes nothing either
        reserved = batch.actions.clone()
        reserved[:, t:] = n_actions
        assert torch.equal(policy(_with_actions(batch, reserved))[:, : t + 1], base[:, : t + 1])
        if t > 0:
            earlier = batch.actions.clone()
            earlier[:, t - 1] = (earlier[:, t - 1] + 1) % n_actions
            assert not torch.allclose(policy(_with_actions(batch, earlier))[:, t], base[:, t])
    policy.train()
    loss = policy.loss(batch)
    assert torch.isfinite(loss)
    loss.backward()
    assert policy.embed_action[0].weight.grad.abs().sum() > 0


def test_discrete_rsa_with_atari_frames():
    torch.manual_seed(0)
    policy = build_policy(tiny_config("dt", token_order=RSA, context_len=3), (4, 84, 84), 6, discrete=True)
    batch = random_batch(batch_size=2, length=3, dtype=torch.float32)
    batch.states = torch.rand(2, 3, 4, 84, 84)
    batch.actions = torch.randint(0, 6, (2, 3))
    batch.prev_actions = torch.randint(0, 7, (2, 3))
    preds = policy.eval()(batch)
    assert preds.shape == (2, 3, 6)
    later = batch.actions.clone()
    later[:, 1:] = 6  # the reserved index
    assert torch.equal(policy(_with_actions(batch, later))[:, :2], preds[:, :2])
    policy.train().loss(batch).backward()
    assert policy.embed_state.convs[0].weight.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------ acting
def _rollout(agent, obs, rewards, target):
    """Act through (N, T, S) observations; the environment's rewards do not depend on actions."""
    agent.reset(target_return=target)
    actions = [agent.act(obs[:, 0])]
    for t in range(1, obs.shape[1]):
        actions.append(agent.act(obs[:, t], rewards[:, t - 1]))
    return np.stack(actions, axis=1)  # (N, T, A)


@pytest.mark.parametrize("model, order", [("dt", RSA), ("dc", RSA), ("dema", RSA), ("dt", RAS), ("dema", RAS)])
def test_window_agent_equals_the_full_forward_on_dataset_windows(model, order):
    """Roll a WindowAgent through two episodes, store them as a dataset, and check every action it
    took equals `policy(window)` on the dataset's windows of the same trajectory (teacher forcing
    with the agent's own past actions): the last position of each full window ending at t, and
    every position of the episode's first window."""
    K, T, n_envs, scale = 4, 11, 2, 10.0
    policy = shaken(tiny_policy(model, dtype=torch.float32, token_order=order, context_len=K))
    rng = np.random.default_rng(0)
    obs = (rng.normal(size=(n_envs, T, STATE_DIM)) * 2 + 1).astype(np.float32)
    rewards = rng.uniform(0, 3, size=(n_envs, T)).astype(np.float32)
    rewards[1, -1] += rewards[0].sum() - rewards[1].sum()  # one target return for both episodes
    target = float(rewards[0].astype(np.float64).sum())
    flat = obs.reshape(-1, STATE_DIM)
    stats = types.SimpleNamespace(state_mean=flat.mean(0), state_std=flat.std(0), reward_scale=scale, delayed=False)
    agent = WindowAgent(policy, stats, num_envs=n_envs, context_len=K, rule=TanhHead(ACT_DIM))
    acted = _rollout(agent, obs, rewards, target)

    terminals = np.zeros(n_envs * T, bool)
    terminals[T - 1] = True
    timeouts = np.zeros(n_envs * T, bool)
    timeouts[-1] = True
    dataset = OfflineDataset(observations=obs.reshape(-1, STATE_DIM), actions=acted.reshape(-1, ACT_DIM),
                             rewards=rewards.reshape(-1), terminals=terminals, timeouts=timeouts, format="memory")
    data = TrajectoryDataset(dataset, context_len=K, reward_scale=scale, state_mean=stats.state_mean,
                             state_std=stats.state_std)
    for episode in range(n_envs):
        first = data.window(episode, 0)
        torch.testing.assert_close(policy(first)[0], torch.as_tensor(acted[episode, :K]), rtol=1e-5, atol=1e-5)
        for t in range(K - 1, T):
            window = data.window(episode, t - K + 1)
            assert window.mask.all()
            torch.testing.assert_close(policy(window)[0, -1], torch.as_tensor(acted[episode, t]), rtol=1e-5, atol=1e-5)
            if order is RSA and t >= 1:
                # the window's own actions matter in this order: zeros in their place give another action
                blind = dataclasses.replace(window, actions=torch.zeros_like(window.actions))
                assert (policy(blind)[0, -1] - policy(window)[0, -1]).abs().max() > 1e-3


def test_window_agent_actions_are_the_shifted_prev_actions():
    policy = rsa_policy("dt", dtype=torch.float32, context_len=3)
    stats = types.SimpleNamespace(state_mean=np.zeros(STATE_DIM, np.float32), state_std=np.ones(STATE_DIM, np.float32),
                                  reward_scale=1.0, delayed=False)
    agent = WindowAgent(policy, stats, num_envs=1, context_len=3, rule=TanhHead(ACT_DIM))
    seen = []
    policy.predict_last = lambda batch: (seen.append(batch), torch.full((1, ACT_DIM), float(len(seen))))[1]
    agent.reset(target_return=1.0)
    for t in range(5):
        agent.act(np.zeros((1, STATE_DIM), np.float32), None if t == 0 else np.zeros(1, np.float32))
    for t, batch in enumerate(seen):  # the action taken at step t is t + 1 (in every component)
        real = batch.mask[0]
        taken = batch.actions[0, :, 0]
        assert taken[-1] == 0
        steps = batch.timesteps[0][real][:-1]  # real positions before the last: a_step = step + 1
        torch.testing.assert_close(taken[real][:-1], (steps + 1).float())
        torch.testing.assert_close(batch.actions[0, :-1], batch.prev_actions[0, 1:])
