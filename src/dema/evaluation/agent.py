"""The acting policy: a trained `SequencePolicy` plus the per-episode state it conditions on.

The model holds no per-episode state; this wrapper does, for a vector of N environments:

- `WindowAgent` (Transformer-like models: DT, DC, BC and Transformer-like DeMa) keeps the last K
  steps of every episode and calls `policy.predict_last` on them, left-padded exactly as in
  training (`dema.data.batch`: zeros and mask False at padded positions).
- `RecurrentAgent` (RNN-like DeMa) keeps the model's recurrent cache and calls `policy.step`, so
  each decision costs O(1) work whatever the episode length.

Both follow the batch contract's alignment: at step t the model sees (R_t, a_{t-1}, s_t), with
a_{-1} = 0 and R_0 = target / scale. After the environment returns r_t, R_{t+1} = R_t - r_t / scale
(the return-to-go includes the reward of its own step). In the delayed-reward setting the
return-to-go is not decreased: the training data put the whole return on the last step, so R_t
equals the target throughout (as DT's `--mode delayed`).

    agent = make_agent(policy, stats, num_envs=10)
    agent.reset(target_return=3600.0)
    action = agent.act(obs)                      # first step: no reward yet
    action = agent.act(obs, reward)              # then: the reward of the previous action
"""

from __future__ import annotations

import numpy as np
import torch

from dema.run import NormStats


class _Agent:
    def __init__(self, policy, stats: NormStats, num_envs: int, act_dim: int, device: str | torch.device = "cpu"):
        self.policy = policy
        self.act_dim = act_dim
        self.stats = stats
        self.num_envs = num_envs
        self.device = torch.device(device)
        self._mean = torch.as_tensor(stats.state_mean, dtype=torch.float32, device=self.device)
        self._std = torch.as_tensor(stats.state_std, dtype=torch.float32, device=self.device)
        self.state_dim = int(self._mean.numel())
        self._started = False

    def reset(self, target_return: float) -> None:
        """Start a new episode in every environment, conditioned on a raw return target."""
        n = self.num_envs
        self.rtg = torch.full((n, 1), target_return / self.stats.reward_scale, device=self.device)
        self.t = torch.zeros(n, dtype=torch.long, device=self.device)
        self.prev_action: torch.Tensor | None = None  # a_{t-1}; None means a_{-1} = 0
        self._started = False
        self._reset_state()

    @torch.no_grad()
    def act(self, obs: np.ndarray, reward: np.ndarray | None = None) -> np.ndarray:
        """(N, S) raw observations (and the (N,) rewards of the previous actions) -> (N, A) actions."""
        state = (torch.as_tensor(obs, dtype=torch.float32, device=self.device).reshape(self.num_envs, -1)
                 - self._mean) / self._std
        if self._started:
            if reward is None:
                raise ValueError("act() after the first step needs the reward of the previous action")
            if not self.stats.delayed:
                r = torch.as_tensor(reward, dtype=torch.float32, device=self.device).reshape(-1, 1)
                self.rtg = self.rtg - r / self.stats.reward_scale
            self.t = self.t + 1
        self._started = True
        action = self._decide(state)
        self.prev_action = action
        return action.cpu().numpy()

    def _prev_action(self) -> torch.Tensor:
        if self.prev_action is not None:
            return self.prev_action
        return torch.zeros(self.num_envs, self.act_dim, device=self.device)  # a_{-1} = 0

    def _reset_state(self) -> None:
        raise NotImplementedError

    def _decide(self, state: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class WindowAgent(_Agent):
    """Transformer-like acting: the last K steps, left-padded, re-read at every decision.

    The window's `actions` (the targets in training) are the actions a_t of its steps: those
    already taken at the earlier positions, derived from `prev_actions` (position j's a_t is
    position j+1's a_{t-1}), and zero at the last position, not taken yet. The r-aprev-s order
    never reads them; Decision Transformer's r-s-a order embeds them, and the last one is never
    seen by the decision (it comes after the s_t token the action is read from).

    A plain Transformer-like DeMa on the CPU reads its window through the fused step
    (dema.models.fused_step: the same function as `predict_last`, tested equal, in one Numba call);
    wrapped policies (layer surgery, attention recorders) and every other model use `predict_last`.
    """

    def __init__(self, policy, stats: NormStats, num_envs: int, context_len: int, act_dim: int, device="cpu"):
        super().__init__(policy, stats, num_envs, act_dim, device)
        self.context_len = context_len

    def _reset_state(self) -> None:
        n, k, s, a = self.num_envs, self.context_len, self.state_dim, self.act_dim
        zeros = dict(device=self.device)
        self.states = torch.zeros(n, k, s, **zeros)  # (N, K, S), newest step last
        self.prev_actions = torch.zeros(n, k, a, **zeros)
        self.returns_to_go = torch.zeros(n, k, 1, **zeros)
        self.timesteps = torch.zeros(n, k, dtype=torch.long, **zeros)
        self.mask = torch.zeros(n, k, dtype=torch.bool, **zeros)
        self._reader = _fused_window_for(self.policy, self.device) or self.policy  # weights re-read per episode

    def _decide(self, state: torch.Tensor) -> torch.Tensor:
        from dema.data.batch import Batch

        # Shift the window one step left and write step t at the last position; positions that
        # have not been filled yet stay zero with mask False, i.e. left padding.
        def push(buffer: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
            return torch.cat([buffer[:, 1:], value.unsqueeze(1).to(buffer.dtype)], dim=1)

        self.states = push(self.states, state)
        self.prev_actions = push(self.prev_actions, self._prev_action())
        self.returns_to_go = push(self.returns_to_go, self.rtg)
        self.timesteps = push(self.timesteps, self.t)
        self.mask = push(self.mask, torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        batch = Batch(states=self.states, actions=self._window_actions(), prev_actions=self.prev_actions,
                      returns_to_go=self.returns_to_go, timesteps=self.timesteps, mask=self.mask)
        return self._reader.predict_last(batch)  # (N, A)

    def _window_actions(self) -> torch.Tensor:
        """(N, K, ...) a_t of each window position: actions[:, :-1] = prev_actions[:, 1:] (a_{t-K+1}..a_{t-1}),
        actions[:, -1] = 0 (a_t, not taken yet; discrete: the reserved index act_dim). At padded
        positions the values are whatever the shift gives (zeros, or a_{-1}): padding is never read."""
        if self.prev_actions.is_floating_point():
            last = torch.zeros_like(self.prev_actions[:, -1:])
        else:
            last = torch.full_like(self.prev_actions[:, -1:], self.act_dim)
        return torch.cat([self.prev_actions[:, 1:], last], dim=1)


def _fused_window_for(policy, device):
    """The fused window read for a plain SequencePolicy it covers (None otherwise): a wrapper's own
    `predict_last` must run, and so must an attention override set on a layer."""
    from dema.models import SequencePolicy
    from dema.models.fused_step import fused_step_for

    if type(policy) is not SequencePolicy or policy.cfg.recurrent:
        return None
    fused = fused_step_for(policy, device)  # None unless every block is a Mamba block
    if fused is not None and any(b.mixer.ssm.attention_override is not None for b in policy.blocks):
        return None
    return fused


class RecurrentAgent(_Agent):
    """RNN-like acting: one `policy.step` per decision on the carried cache. On the CPU, the fused
    step (dema.models.fused_step: the same decision as one Numba call, tested equal) where it covers
    the policy; its weights are re-read at every episode start."""

    def __init__(self, policy, stats: NormStats, num_envs: int, act_dim: int, device="cpu"):
        super().__init__(policy, stats, num_envs, act_dim, device)

    def _reset_state(self) -> None:
        from dema.models.fused_step import fused_step_for

        self._fused = fused_step_for(self.policy, self.device)
        if self._fused is not None:
            self.cache = self._fused.init_cache(self.num_envs)
        else:
            self.cache = self.policy.init_cache(self.num_envs, self.device)

    def _decide(self, state: torch.Tensor) -> torch.Tensor:
        step = self.policy.step if self._fused is None else self._fused.step
        action, self.cache = step(state, self._prev_action(), self.rtg, self.t, self.cache)
        return action


def make_agent(policy, stats: NormStats, num_envs: int, context_len: int, act_dim: int,
               recurrent: bool, device="cpu") -> _Agent:
    """The agent that acts the way the model was trained: recurrent cache or K-step window."""
    if recurrent:
        return RecurrentAgent(policy, stats, num_envs, act_dim, device)
    return WindowAgent(policy, stats, num_envs, context_len, act_dim, device)
