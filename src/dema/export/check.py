"""An exported model run through ONNX Runtime beside the PyTorch policy it came from, on random decisions.

`largest_difference` plays a few steps of random observations, actions and returns-to-go for a
small batch: the recurrent step feeds its state back (against `SequencePolicy.step`), the window
slides over left-padded steps (against `predict_last`), and returns the largest absolute
difference of the actions. `dema export` prints it after writing a model.
"""

from __future__ import annotations

import numpy as np
import torch

from dema.data.batch import Batch


@torch.no_grad()
def largest_difference(policy, stats, model_config, model: bytes, description: dict, steps: int = 8,
                       batch: int = 2, seed: int = 0) -> tuple[float, int]:
    """(max |action_onnx - action_torch|, decisions compared)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    kept = {value.name for value in session.get_inputs()}
    rng = np.random.default_rng(seed)
    policy = policy.float().cpu().eval()
    mean, std = np.asarray(stats.state_mean, np.float32), np.asarray(stats.state_std, np.float32)
    shape, a = policy.state_dim, policy.act_dim
    if isinstance(shape, int):
        obs = (mean + std * rng.standard_normal((batch, steps, shape))).astype(np.float32)  # raw, about the data's scale
    else:  # frames, 0-255
        obs = rng.integers(0, 256, (batch, steps, *shape)).astype(np.float32)
    if policy.discrete:  # indices, the reserved one (no action) first
        prev = np.concatenate([np.full((batch, 1), a), rng.integers(0, a, (batch, steps - 1))], 1).astype(np.int64)
    else:
        prev = np.concatenate([np.zeros((batch, 1, a)), rng.uniform(-1, 1, (batch, steps - 1, a))], 1).astype(np.float32)
    rtg = rng.uniform(0, 4, (batch, steps, 1)).astype(np.float32)
    t = np.broadcast_to(np.arange(steps), (batch, steps)).astype(np.int64)

    def run(feed: dict) -> list:
        return session.run(None, {k: v for k, v in feed.items() if k in kept})

    normalised = torch.from_numpy((obs - mean) / std)
    worst = 0.0
    if description["kind"] == "recurrent-step":
        layout = description["state"]
        state = {item["input"]: np.zeros((batch, *item["shape"][1:]), np.float32) for item in layout}
        cache = policy.init_cache(batch)
        for i in range(steps):
            out = run({"obs": obs[:, i], "prev_action": prev[:, i], "return_to_go": rtg[:, i], "timestep": t[:, i],
                       **state})
            state = {item["input"]: value for item, value in zip(layout, out[1:])}
            expected, cache = policy.step(normalised[:, i], torch.from_numpy(prev[:, i]), torch.from_numpy(rtg[:, i]),
                                          torch.from_numpy(t[:, i]), cache)
            worst = max(worst, float(np.abs(out[0] - expected.numpy()).max()))
        return worst, steps * batch
    k = int(description["context_len"])
    for i in range(steps):
        first = max(0, i + 1 - k)

        def window(x: np.ndarray) -> np.ndarray:  # steps first..i, left-padded with zeros to K
            real = x[:, first: i + 1]
            return np.concatenate([np.zeros((batch, k - real.shape[1], *x.shape[2:]), x.dtype), real], 1)

        mask = window(np.ones((batch, steps), bool))
        feed = {"obs": window(obs), "prev_actions": window(prev), "returns_to_go": window(rtg),
                "timesteps": window(t), "mask": mask}
        out = run(feed)
        prev_actions = torch.from_numpy(feed["prev_actions"])
        actions = torch.cat([prev_actions[:, 1:], torch.zeros_like(prev_actions[:, -1:])], 1)
        expected = policy.predict_last(Batch(
            states=torch.from_numpy(window(normalised.numpy())), actions=actions, prev_actions=prev_actions,
            returns_to_go=torch.from_numpy(feed["returns_to_go"]), timesteps=torch.from_numpy(feed["timesteps"]),
            mask=torch.from_numpy(mask)))
        worst = max(worst, float(np.abs(out[0] - expected.numpy()).max()))
    return worst, steps * batch
