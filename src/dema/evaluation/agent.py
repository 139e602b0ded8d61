"""The acting policy: a trained `SequencePolicy` plus the per-episode state it conditions on.

The model holds no per-episode state; an agent does, for a vector of N environments:

- `WindowAgent` (Transformer-like models: DT, DC, BC and Transformer-like DeMa) keeps the last K
  steps of every episode and calls `policy.predict_last` on them, left-padded exactly as in
  training (`dema.data.batch`: zeros and mask False at padded positions). With `embed_once`
  (Atari frames) the window keeps each state's embedding instead of the state: a frame goes
  through the CNN once, when it arrives, and the window is read with
  `predict_last(batch, state_embeddings=...)`, so acting at K 30 costs one CNN pass per
  environment per step, not 30 (equal to the full forward over the frames, tested).
- `RecurrentAgent` (RNN-like DeMa) keeps the model's recurrent cache and calls `policy.step`, so
  each decision costs O(1) work whatever the episode length.

Both follow the batch contract's alignment: at step t the model sees (R_t, a_{t-1}, s_t), with
a_{-1} = 0 (discrete actions: the reserved index n_actions) and R_0 = target / scale. After the
environment returns r_t, R_{t+1} = R_t - r_t / scale (the return-to-go includes the reward of its
own step). In the delayed-reward setting the return-to-go is not decreased: the training data put
the whole return on the last step, so R_t equals the target throughout (as DT's `--mode delayed`).
States are normalised with the run's statistics (Atari frames: mean 0, std 255, as in training).

The action rule turns the model's output into the action: `TanhHead` (continuous: the head is
tanh-bounded and its output is the action) or `SoftmaxSampling` (discrete, as DT's Atari code
acts: sampled from the softmax of the logits, by a generator seeded at every reset).

    agent = make_agent(policy, stats, spec, model_config, num_envs=10)
    agent.reset(target_return=3600.0, seed=0)
    action = agent.act(obs)                      # first step: no reward yet
    action = agent.act(obs, reward)              # then: the reward of the previous action
"""

from __future__ import annotations

import numpy as np
import torch

from dema.data.batch import Batch
from dema.envs import EnvSpec
from dema.run import NormStats


class TanhHead:
    """Continuous actions: the policy's output, tanh-bounded by its head, is the action; a_{-1} = 0."""

    def __init__(self, act_dim: int):
        self.act_dim = act_dim

    def no_action(self, n: int, device) -> torch.Tensor:
        return torch.zeros(n, self.act_dim, device=device)  # (N, A)

    def seed(self, seed: int) -> None:
        pass

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        return output


class SoftmaxSampling:
    """Discrete actions sampled from the softmax of the logits (DT's Atari code); a_{-1} is the
    reserved index n_actions, as in training."""

    def __init__(self, n_actions: int, device="cpu"):
        self.n_actions = n_actions
        self.generator = torch.Generator(device=device)

    def no_action(self, n: int, device) -> torch.Tensor:
        return torch.full((n,), self.n_actions, dtype=torch.long, device=device)  # (N,)

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits.float(), dim=-1)  # (N, n_actions)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(1)  # (N, 1) -> (N,)


class Agent:
    """What every agent shares: the normalised state, R_t, t and a_{t-1} of N episodes, the rule."""

    def __init__(self, policy, stats: NormStats, num_envs: int, rule, device="cpu",
                 state_shape: int | tuple[int, ...] = -1):
        """state_shape: S (or -1: the observation flattened), or (C, H, W) frames."""
        self.policy, self.stats, self.num_envs, self.rule = policy, stats, num_envs, rule
        self.device = torch.device(device)
        self.state_shape = (state_shape,) if isinstance(state_shape, int) else tuple(state_shape)
        self._mean = torch.as_tensor(stats.state_mean, dtype=torch.float32, device=self.device)
        self._std = torch.as_tensor(stats.state_std, dtype=torch.float32, device=self.device)
        self._started = False

    def reset(self, target_return: float, seed: int | None = None) -> None:
        """Start a new episode in every environment, conditioned on a raw return target; `seed`
        seeds the action rule (discrete sampling), as the environments' reset seed does them."""
        n = self.num_envs
        self.rtg = torch.full((n, 1), target_return / self.stats.reward_scale, device=self.device)
        self.t = torch.zeros(n, dtype=torch.long, device=self.device)
        self.prev_action = self.rule.no_action(n, self.device)  # a_{t-1}, here a_{-1}
        if seed is not None:
            self.rule.seed(seed)
        self._started = False
        self._reset_state()

    @torch.no_grad()
    def act(self, obs: np.ndarray, reward: np.ndarray | None = None) -> np.ndarray:
        """(N, ...) raw observations (and the (N,) rewards of the previous actions) -> (N, A) actions
        (discrete: (N,) indices)."""
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device).reshape(self.num_envs, *self.state_shape)
        state = (obs - self._mean) / self._std
        if self._started:
            if reward is None:
                raise ValueError("act() after the first step needs the reward of the previous action")
            if not self.stats.delayed:
                r = torch.as_tensor(reward, dtype=torch.float32, device=self.device).reshape(-1, 1)
                self.rtg = self.rtg - r / self.stats.reward_scale
            self.t = self.t + 1
        self._started = True
        action = self.rule(self._decide(state))
        self.prev_action = action
        return action.cpu().numpy()

    def _reset_state(self) -> None:
        raise NotImplementedError

    def _decide(self, state: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class WindowAgent(Agent):
    """Transformer-like acting: the last K steps, left-padded, re-read at every decision.

    The window's `actions` (the targets in training) are the actions a_t of its steps: those
    already taken at the earlier positions, derived from `prev_actions` (position j's a_t is
    position j+1's a_{t-1}), and "no action" at the last position, not taken yet (zero; discrete:
    the reserved index). The r-aprev-s order never reads them; Decision Transformer's r-s-a order
    embeds them, and the last one is never seen by the decision (it comes after the s_t token the
    action is read from).

    A plain Transformer-like DeMa on the CPU reads its window through the fused step
    (dema.models.fused_step: the same function as `predict_last`, tested equal, in one Numba call);
    wrapped policies (layer surgery, attention recorders) and every other model use `predict_last`.
    """

    def __init__(self, policy, stats: NormStats, num_envs: int, context_len: int, rule, device="cpu",
                 state_shape: int | tuple[int, ...] = -1, embed_once: bool = False):
        super().__init__(policy, stats, num_envs, rule, device, state_shape)
        self.context_len, self.embed_once = context_len, embed_once

    def _reset_state(self) -> None:
        n, k, dev = self.num_envs, self.context_len, self.device
        self.states = None  # (N, K, S) states, or (N, K, E) their embeddings: made at the first decision
        a = self.prev_action
        self.prev_actions = torch.zeros(n, k, *a.shape[1:], dtype=a.dtype, device=dev)  # (N, K, A); discrete (N, K)
        self.returns_to_go = torch.zeros(n, k, 1, device=dev)
        self.timesteps = torch.zeros(n, k, dtype=torch.long, device=dev)
        self.mask = torch.zeros(n, k, dtype=torch.bool, device=dev)
        fused = None if self.embed_once else _fused_window_for(self.policy, dev)
        self._reader = fused or self.policy  # weights re-read per episode

    def _decide(self, state: torch.Tensor) -> torch.Tensor:
        # Shift the window one step left and write step t at the last position; positions that
        # have not been filled yet stay zero with mask False, i.e. left padding.
        def push(buffer: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
            return torch.cat([buffer[:, 1:], value.unsqueeze(1).to(buffer.dtype)], dim=1)

        value = self.policy.embed_states(state) if self.embed_once else state  # (N, E): this frame's one CNN pass
        if self.states is None:
            self.states = value.new_zeros(self.num_envs, self.context_len, *value.shape[1:])
        self.states = push(self.states, value)
        self.prev_actions = push(self.prev_actions, self.prev_action)
        self.returns_to_go = push(self.returns_to_go, self.rtg)
        self.timesteps = push(self.timesteps, self.t)
        self.mask = push(self.mask, torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        last = self.rule.no_action(self.num_envs, self.device).unsqueeze(1)  # a_t, not taken yet
        actions = torch.cat([self.prev_actions[:, 1:], last], dim=1)  # (N, K, ...): a_{t-K+1} .. a_{t-1}, none
        window = dict(actions=actions, prev_actions=self.prev_actions, returns_to_go=self.returns_to_go,
                      timesteps=self.timesteps, mask=self.mask)
        if not self.embed_once:
            return self._reader.predict_last(Batch(states=self.states, **window))  # (N, A)
        no_states = self.states.new_zeros(self.num_envs, self.context_len, 0)  # (N, K, 0): the embeddings stand in
        return self._reader.predict_last(Batch(states=no_states, **window), state_embeddings=self.states)


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


class RecurrentAgent(Agent):
    """RNN-like acting: one `policy.step` per decision on the carried cache. On the CPU, the fused
    step (dema.models.fused_step: the same decision as one Numba call, tested equal) where it covers
    the policy; its weights are re-read at every episode start."""

    def _reset_state(self) -> None:
        from dema.models.fused_step import fused_step_for

        self._fused = fused_step_for(self.policy, self.device)
        if self._fused is not None:
            self.cache = self._fused.init_cache(self.num_envs)
        else:
            self.cache = self.policy.init_cache(self.num_envs, self.device)

    def _decide(self, state: torch.Tensor) -> torch.Tensor:
        step = self.policy.step if self._fused is None else self._fused.step
        action, self.cache = step(state, self.prev_action, self.rtg, self.t, self.cache)
        return action


def make_agent(policy, stats: NormStats, spec: EnvSpec, model_config, num_envs: int, device="cpu") -> Agent:
    """The agent that acts the way the model was trained (recurrent cache or K-step window), with the
    environment's action rule; frames are embedded once each."""
    rule = SoftmaxSampling(spec.act_dim, device) if spec.discrete else TanhHead(spec.act_dim)
    if model_config.recurrent:
        return RecurrentAgent(policy, stats, num_envs, rule, device, spec.state_shape)
    return WindowAgent(policy, stats, num_envs, model_config.context_len, rule, device, spec.state_shape,
                       embed_once=spec.atari)
