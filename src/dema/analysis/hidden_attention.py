"""The paper's hidden-attention figures for a DeMa policy.

Two views, both channel-averaged per layer:
- window: the full (3K, 3K) matrix over one K-step window (what Transformer-like DeMa sees when it
  acts at that step);
- episode: the last row over a whole episode prefix (the current decision's attention over every
  past token), plotted against the distance into the past on a log scale, where the paper finds a
  roughly exponential decay with a period of 3 tokens (one step = R, a, s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dema.attention import policy_hidden_attention
from dema.data.batch import Batch


@dataclass
class AttentionSummary:
    window: list[np.ndarray]  # per layer, (T, T) channel-mean |alpha| over one window
    last_row: list[np.ndarray]  # per layer, (T_episode,) channel-mean |alpha| of the last token

    def decay_fit(self) -> list[float]:
        """Per layer, the slope of log10 mean|alpha| against distance (tokens): how fast it decays."""
        slopes = []
        for row in self.last_row:
            distance = np.arange(len(row))[::-1]  # last token is at distance 0
            keep = row > 0
            slopes.append(float(np.polyfit(distance[keep], np.log10(row[keep]), 1)[0]) if keep.sum() > 1 else 0.0)
        return slopes


def summarise(policy, window: Batch, episode: Batch) -> AttentionSummary:
    policy.eval()
    window_alpha = policy_hidden_attention(policy, window)  # per layer (1, Di, T, T)
    rows = policy_hidden_attention(policy, episode, last_row=True)  # per layer (1, Di, T)
    return AttentionSummary(
        window=[a[0].abs().mean(0).double().numpy() for a in window_alpha],
        last_row=[r[0].abs().mean(0).double().numpy() for r in rows],
    )


def plot(summary: AttentionSummary, path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_layer = len(summary.window)
    fig, axes = plt.subplots(2, n_layer, figsize=(4 * n_layer, 7.5), squeeze=False)
    for layer, (matrix, row) in enumerate(zip(summary.window, summary.last_row)):
        ax = axes[0, layer]
        shown = np.where(np.tril(np.ones_like(matrix)) > 0, np.log10(matrix + 1e-12), np.nan)
        image = ax.imshow(shown, cmap="viridis")
        ax.set_title(f"layer {layer + 1}: window, log10 mean|alpha|")
        ax.set_xlabel("token j (R, a, s per step)")
        ax.set_ylabel("token i")
        fig.colorbar(image, ax=ax, fraction=0.046)
        ax = axes[1, layer]
        distance = np.arange(len(row))[::-1]
        ax.semilogy(distance, row + 1e-12, lw=0.8)
        ax.set_xscale("symlog", linthresh=10)
        ax.set_title(f"layer {layer + 1}: last row over the episode")
        ax.set_xlabel("distance into the past (tokens)")
        ax.set_ylabel("mean |alpha|")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def episode_prefix(data, episode: int, steps: int) -> Batch:
    """The first `steps` steps of an episode as one unpadded batch (via a dataset with K = steps)."""
    length = min(steps, data.episodes[episode].length)
    saved = data.context_len
    data.context_len = length
    try:
        return data.window(episode, 0)
    finally:
        data.context_len = saved
