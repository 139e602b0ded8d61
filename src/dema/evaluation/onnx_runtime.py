"""Acting through ONNX Runtime: the agents of `dema eval --runtime onnx`, on an exported policy.

The exported graph (`dema.export`) is the decision; these agents keep what it conditions on, as the
PyTorch agents of `dema.evaluation.agent` do, in NumPy and the same float32 arithmetic, so that the
same episodes give the same actions (tested to 1e-5 over whole episodes):

- return-to-go: starts at target / reward_scale and drops by reward / reward_scale after each step
  (kept at the target when the run's rewards are delayed); a_{-1} = 0; t counts from 0.
- Atari (RNN-like DeMa on frames): a_{-1} is the reserved index n_actions and a_t is sampled from
  the softmax of the exported logits by `SoftmaxSampling`, seeded at every reset as the PyTorch
  agent's, so the same logits draw the same actions.
- `OnnxRecurrentAgent` (RNN-like DeMa): the Mamba state as arrays, zeros at the start, each step's
  next_* outputs fed back as the next step's inputs.
- `OnnxWindowAgent` (every other model): the last K raw observations, actions, returns-to-go and
  timesteps, left-padded with mask False, as `WindowAgent` keeps them.

    session = onnx_session(model_bytes_or_path)                 # one thread, every graph optimisation
    agent = make_onnx_agent(session, description, num_envs=10)  # description: the export's JSON
    agent.reset(target_return=3600.0); action = agent.act(obs); action = agent.act(obs, reward)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from dema.errors import ConfigError
from dema.evaluation.agent import SoftmaxSampling


def onnx_session(model: bytes | str | Path, threads: int = 1):
    """An onnxruntime CPU session of `model` (bytes or a file), `threads` intra-op threads (1: a
    decision at small batch is a chain of small ops, which a second thread only waits on)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError('acting through ONNX Runtime needs onnxruntime: pip install -e ".[export]"') from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


class _OnnxAgent:
    def __init__(self, session, description: dict, num_envs: int):
        self.session, self.num_envs = session, num_envs
        self.reward_scale = np.float32(description["reward_scale"])
        self.delayed = bool(description["delayed"])
        self.inputs = {value.name for value in session.get_inputs()}  # an exporter drops unused ones
        self.outputs = [value.name for value in session.get_outputs()]
        self.discrete = bool(description.get("discrete", False))
        self.decision = description["outputs"][0]["name"]  # "action", or "logits" (discrete)
        self.act_dim = _feature_size(description, self.decision, "outputs")  # A, or n_actions
        self.obs_shape = tuple(_input(description, "obs")["shape"][-(3 if self.discrete else 1):])  # (S,) or (C, H, W)
        self.sampling = SoftmaxSampling(self.act_dim) if self.discrete else None
        self._started = False

    def reset(self, target_return: float, seed: int | None = None) -> None:
        """Start a new episode in every environment, conditioned on a raw return target (`seed`: what
        the PyTorch agents seed their action sampling with; continuous actions are not sampled)."""
        n = self.num_envs
        self.rtg = np.full((n, 1), target_return / float(self.reward_scale), dtype=np.float32)
        self.t = np.zeros(n, dtype=np.int64)
        if self.discrete:
            self.prev_action = np.full(n, self.act_dim, dtype=np.int64)  # a_{-1}: the reserved index
            if seed is not None:
                self.sampling.seed(seed)
        else:
            self.prev_action = np.zeros((n, self.act_dim), dtype=np.float32)  # a_{-1} = 0
        self._started = False
        self._reset_state()

    def act(self, obs: np.ndarray, reward: np.ndarray | None = None) -> np.ndarray:
        """(N, S) raw observations (and the (N,) rewards of the previous actions) -> (N, A) actions."""
        obs = np.asarray(obs, dtype=np.float32).reshape(self.num_envs, *self.obs_shape)
        if self._started:
            if reward is None:
                raise ValueError("act() after the first step needs the reward of the previous action")
            if not self.delayed:
                r = np.asarray(reward, dtype=np.float32).reshape(-1, 1)
                self.rtg = self.rtg - r / self.reward_scale
            self.t = self.t + 1
        self._started = True
        action = self._decide(obs)
        if self.discrete:  # (N, n_actions) logits -> (N,) sampled indices
            action = self.sampling(torch.from_numpy(action)).numpy()
        self.prev_action = action
        return action

    def _run(self, feed: dict) -> dict:
        values = self.session.run(None, {name: value for name, value in feed.items() if name in self.inputs})
        return dict(zip(self.outputs, values))

    def _reset_state(self) -> None:
        raise NotImplementedError

    def _decide(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class OnnxRecurrentAgent(_OnnxAgent):
    """RNN-like DeMa: one run of the exported step per decision, the state carried between them."""

    def __init__(self, session, description: dict, num_envs: int):
        super().__init__(session, description, num_envs)
        self.state_layout = description["state"]

    def _reset_state(self) -> None:
        self.state = {item["input"]: np.zeros((self.num_envs, *item["shape"][1:]), dtype=np.float32)
                      for item in self.state_layout}

    def _decide(self, obs: np.ndarray) -> np.ndarray:
        out = self._run({"obs": obs, "prev_action": self.prev_action, "return_to_go": self.rtg, "timestep": self.t,
                         **self.state})
        self.state = {item["input"]: out[item["output"]] for item in self.state_layout}
        return out[self.decision]


class OnnxWindowAgent(_OnnxAgent):
    """Transformer-like acting: the last K steps, left-padded, re-read by the exported window."""

    def __init__(self, session, description: dict, num_envs: int):
        super().__init__(session, description, num_envs)
        self.context_len = int(description["context_len"])
        self.state_dim = _feature_size(description, "obs", "inputs")

    def _reset_state(self) -> None:
        n, k = self.num_envs, self.context_len
        self.obs = np.zeros((n, k, self.state_dim), dtype=np.float32)  # (N, K, S) raw, newest step last
        self.prev_actions = np.zeros((n, k, self.act_dim), dtype=np.float32)
        self.returns_to_go = np.zeros((n, k, 1), dtype=np.float32)
        self.timesteps = np.zeros((n, k), dtype=np.int64)
        self.mask = np.zeros((n, k), dtype=bool)

    def _decide(self, obs: np.ndarray) -> np.ndarray:
        # shift the window one step left and write step t last; unfilled positions stay masked padding
        def push(buffer: np.ndarray, value) -> np.ndarray:
            return np.concatenate([buffer[:, 1:], np.asarray(value, dtype=buffer.dtype)[:, None]], axis=1)

        self.obs = push(self.obs, obs)
        self.prev_actions = push(self.prev_actions, self.prev_action)
        self.returns_to_go = push(self.returns_to_go, self.rtg)
        self.timesteps = push(self.timesteps, self.t)
        self.mask = push(self.mask, np.ones(self.num_envs, dtype=bool))
        out = self._run({"obs": self.obs, "prev_actions": self.prev_actions, "returns_to_go": self.returns_to_go,
                         "timesteps": self.timesteps, "mask": self.mask})
        return out["action"]


def _feature_size(description: dict, name: str, where: str) -> int:
    """The last axis of input or output `name` in the export's description."""
    return int(_input(description, name, where)["shape"][-1])


def _input(description: dict, name: str, where: str = "inputs") -> dict:
    for item in description[where]:
        if item["name"] == name:
            return item
    raise ConfigError(f"the export's description has no {name!r} among its {where}: was it written by dema export?")


def make_onnx_agent(session, description: dict, num_envs: int) -> _OnnxAgent:
    """The agent for the kind of graph the export wrote (its description's `kind`)."""
    kind = description.get("kind")
    if kind == "recurrent-step":
        return OnnxRecurrentAgent(session, description, num_envs)
    if kind == "window":
        return OnnxWindowAgent(session, description, num_envs)
    raise ConfigError(f"unknown kind of exported graph {kind!r}; dema export writes 'recurrent-step' or 'window'")


def exported_agents(policy, model_config, stats):
    """`num_envs -> agent` acting through ONNX Runtime with `policy` exported as `dema export` exports it
    (in memory; the export takes seconds to a minute)."""
    from dema.export.onnx import onnx_model

    model, signature = onnx_model(policy, stats.state_mean, stats.state_std, model_config.recurrent,
                                  model_config.context_len)
    description = {**signature, "reward_scale": stats.reward_scale, "delayed": stats.delayed}
    session = onnx_session(model)
    return lambda num_envs: make_onnx_agent(session, description, num_envs)


def load_exported(path: str | Path, num_envs: int = 1, threads: int = 1) -> _OnnxAgent:
    """An agent acting with the model `dema export` wrote at `path` (its JSON beside it)."""
    path = Path(path)
    meta = path.with_suffix(".json")
    if not path.is_file() or not meta.is_file():
        raise ConfigError(f"{path} and {meta} are not both there: write them with dema export RUN --out {path}")
    return make_onnx_agent(onnx_session(path, threads), json.loads(meta.read_text()), num_envs)
