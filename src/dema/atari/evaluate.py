"""Scoring a policy in an Atari game: vectorised episodes under the DT protocol, actions sampled.

`run_episodes(policy, model_config, spec, n, seed, target, ...)` plays exactly `n` episodes in
rounds of at most `max_envs` copies of the game (`dema.atari.env.vector_env`), each copy ONE episode
(finished copies keep being stepped but are ignored, as `dema.evaluation.rollout`), and returns the
same `Episodes` record as the MuJoCo rollouts, so `dema.evaluation.evaluate` reports both alike.

Acting, as DT's Atari code: the action is SAMPLED from the softmax of the logits (a torch generator
seeded per round); the return-to-go starts at the target (unscaled: the game's reward_scale is 1)
and drops by each reward; a_{-1} is the reserved index n_actions, as in training.

The CNN embedding of a frame is computed ONCE, when the frame arrives: the agent keeps the last K
state embeddings of every episode (not the frames) and re-reads them through the trunk; the
policy's state encoder is bypassed for that call only (`_precomputed_states`), so acting at K 30
costs one CNN pass per environment per step, not 30. RNN-like DeMa steps its cache (one CNN pass too).
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn as nn

from dema.data.batch import Batch
from dema.envs import EnvSpec
from dema.evaluation.rollout import Episodes, play_rounds


@contextmanager
def _precomputed_states(policy):
    """Inside: `policy` takes state embeddings (..., E) where it took frames (its encoder is the identity)."""
    encoder = policy.embed_state
    policy.embed_state = nn.Identity()
    try:
        yield encoder
    finally:
        policy.embed_state = encoder


class AtariAgent:
    """The per-episode state of N games and the decision of each step (module docstring)."""

    def __init__(self, policy, model_config, spec: EnvSpec, num_envs: int, generator: torch.Generator,
                 device="cpu"):
        self.policy, self.cfg, self.spec, self.n = policy, model_config, spec, num_envs
        self.device, self.generator = torch.device(device), generator
        self.recurrent = bool(model_config.recurrent)
        self.encode_seconds = 0.0  # time in the CNN (once per frame)

    def reset(self, target: float) -> None:
        n, k, e, dev = self.n, self.cfg.context_len, self.cfg.embed_dim, self.device
        self.rtg = torch.full((n, 1), target / self.spec.reward_scale, device=dev)
        self.t = torch.zeros(n, dtype=torch.long, device=dev)
        self.prev_action = torch.full((n,), self.spec.act_dim, dtype=torch.long, device=dev)  # a_{-1}: reserved
        self.started = False
        if self.recurrent:
            self.cache = self.policy.init_cache(n, dev)
        else:
            self.states = torch.zeros(n, k, e, device=dev)  # state EMBEDDINGS of the window, newest last
            self.prev_actions = torch.zeros(n, k, dtype=torch.long, device=dev)
            self.returns_to_go = torch.zeros(n, k, 1, device=dev)
            self.timesteps = torch.zeros(n, k, dtype=torch.long, device=dev)
            self.mask = torch.zeros(n, k, dtype=torch.bool, device=dev)

    @torch.no_grad()
    def act(self, frames: np.ndarray, reward: np.ndarray | None = None) -> np.ndarray:
        """(N, F, 84, 84) uint8 stacked frames (and the rewards of the previous actions) -> (N,) actions."""
        if self.started:
            self.rtg = self.rtg - torch.as_tensor(reward, dtype=torch.float32, device=self.device).reshape(-1, 1) \
                / self.spec.reward_scale
            self.t = self.t + 1
        self.started = True
        state = torch.as_tensor(frames, device=self.device).float() / 255.0  # as TrajectoryDataset scales them
        if self.recurrent:
            logits, self.cache = self.policy.step(state, self.prev_action, self.rtg, self.t, self.cache)
        else:
            began = time.perf_counter()
            embedding = self.policy.embed_state(state)  # (N, E): the one CNN pass of this frame
            self.encode_seconds += time.perf_counter() - began
            logits = self._window_logits(embedding)
        probs = torch.softmax(logits.float(), dim=-1)
        action = torch.multinomial(probs, 1, generator=self.generator).squeeze(1)
        self.prev_action = action
        return action.cpu().numpy()

    def _window_logits(self, embedding: torch.Tensor) -> torch.Tensor:
        def push(buffer, value):
            return torch.cat([buffer[:, 1:], value.unsqueeze(1).to(buffer.dtype)], dim=1)

        self.states = push(self.states, embedding)
        self.prev_actions = push(self.prev_actions, self.prev_action)
        self.returns_to_go = push(self.returns_to_go, self.rtg)
        self.timesteps = push(self.timesteps, self.t)
        self.mask = push(self.mask, torch.ones(self.n, dtype=torch.bool, device=self.device))
        # a_t of each position (DT's order embeds them): the next position's a_{t-1}; the last is not
        # taken yet (the reserved index; the decision, read at s_t, comes before that token)
        last = torch.full_like(self.prev_actions[:, -1:], self.spec.act_dim)
        actions = torch.cat([self.prev_actions[:, 1:], last], dim=1)
        batch = Batch(states=self.states, actions=actions, prev_actions=self.prev_actions,
                      returns_to_go=self.returns_to_go, timesteps=self.timesteps, mask=self.mask)
        with _precomputed_states(self.policy):
            return self.policy.predict_last(batch)


def run_episodes(policy, model_config, spec: EnvSpec, n: int, seed: int, target: float, max_envs: int = 50,
                 max_episode_steps: int = 0, device="cpu", recorder=None) -> Episodes:
    """Play `n` episodes of the game of `spec` conditioned on `target`; episode j gets seed `seed + j`'s
    round (environment i of a round is reset with seed round_seed + i, its actions drawn from a
    generator seeded with round_seed). A `recorder` (dema.evaluation.video) gets the frames of the
    episodes it wants: the newest frame of each observation's stack, what the policy sees."""
    from dema.atari.env import FRAME_SKIP, vector_env
    from dema.envs import ATARI_MAX_FRAMES

    max_frames = 4 * max_episode_steps if max_episode_steps else ATARI_MAX_FRAMES

    def make_agent(num_envs: int, round_seed: int) -> AtariAgent:
        generator = torch.Generator(device=device).manual_seed(round_seed)
        return AtariAgent(policy, model_config, spec, num_envs, generator, device)

    frames = None
    if recorder is not None:
        from dema.evaluation.video import FrameSource

        # the console shows 60 frames a second and each decision lasts FRAME_SKIP of them
        frames = FrameSource(frame=lambda envs, obs, i: obs[i, -1], fps=lambda envs, i: 60 / FRAME_SKIP)
    return play_rounds(n, max_envs, seed, lambda num_envs, _: vector_env(spec.name, num_envs, max_frames=max_frames),
                       make_agent, target, lambda action, envs: action.astype(np.int64), recorder, frames)
