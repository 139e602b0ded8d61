"""The ONE rule every verdict of `dema report` follows (version 2, `RULE`): the hierarchical bootstrap of
paired differences, the minimum evidence, the two kinds of test, the datasets no model learned, and
the sensitivity of a verdict to the score it reads.

Why version 2: version 1 bootstrapped the paired differences as if every pair were independent. The
seeds of one dataset are not: a single dataset with a large effect made an interval over 27 pairs
look far surer than 9 datasets allow (docs/REPRODUCTION.md's MuJoCo verdict: [+0.4, +20.1] over the
pairs against [-4.6, +23.7] over the datasets). So the resampling follows how the data were made:
first the datasets, then the seeds within each.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

import numpy as np

from dema.envs import ATARI_SCORES

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
MARGIN = 5.0  # equivalence margin of ">=" and "not needed" claims, in normalised points
MIN_PAIRS = 5  # fewer paired runs than this: "inconclusive (n pairs)" whatever the interval
MIN_DATASETS = 2  # ... and over fewer datasets than this, unless the claim is about one game
LEARNED_SE = 2.0  # a model learned a dataset if its mean final score is this many standard errors above random

# The normalised score of random play, where the normalisation's own zero is not random play. D4RL's
# and maze2d's references define 0 as a random policy's return. Atari's gamer normalisation takes its
# low end from DT's code (Pong -21, Breakout 2), while a random policy scores -20.4 on Pong and 1.1 on
# Breakout in our collected data's epsilon-1 level (docs/DATASETS.md: 22 and 112 episodes) under the
# same evaluation protocol: raw returns, normalised below.
RANDOM_PLAY_RETURN = {"Pong": -20.4, "Breakout": 1.1}

RULE = (
    f"Rule (version 2). Runs A and B are paired by (protocol, dataset, seed, the rest of the variant); each "
    f"pair gives a difference A - B of the final normalised scores (final weights, first return target). The "
    f"estimate is the mean over datasets of each dataset's mean difference. Its 95% interval comes from a "
    f"hierarchical bootstrap ({BOOTSTRAP_RESAMPLES:,} resamples, numpy seed {BOOTSTRAP_SEED}, percentile): "
    f"resample the datasets with replacement, then the pairs (seeds) within each drawn dataset, because the "
    f"seeds of one dataset are not independent evidence about the next dataset. A claim needs at least "
    f"{MIN_PAIRS} pairs over at least {MIN_DATASETS} datasets to be \"supported\" or \"not supported\" (a "
    f"claim about Atari, where Breakout is the one game learned here: {MIN_PAIRS} seeds on it); with fewer it "
    f"is \"inconclusive (n pairs)\". Where the paper says A beats B, the test is \"beats\": \"supported\" if the "
    f"interval lies above 0, \"not supported\" if below. Where it says A matches B or B's addition is not "
    f"needed, the test keeps an equivalence margin of {MARGIN:g} normalised points: \"supported\" if the "
    f"interval's lower end is above -{MARGIN:g}, \"not supported\" if its upper end is below -{MARGIN:g} (each "
    f"such claim lists the seeds' spread of A - B on every dataset beside the margin). A dataset that neither "
    f"model learned (neither mean final score above random play by {LEARNED_SE:g} standard errors over seeds) "
    f"is named and left out of the claim. Sensitivity: each verdict is computed again (a) with the mean of "
    f"the last three periodic evaluations instead of the final weights and (b) on the second return target; "
    f"a verdict that changes under either is marked \"fragile\". A claim with no pairs is \"no data\", saying "
    f"what is missing. Runs with delayed rewards or an added position embedding enter only the claims about "
    f"those. Parameter claims compare `params` of the records, and again without DT's learned timestep table "
    f"(max_ep_len x embedding: 27k rows on Atari): \"supported\" if DeMa / DT is within the stated bound on "
    f"every dataset, \"not supported\" if on none, \"partly supported\" otherwise. The hidden-attention "
    f"claims read the analyses' records (results/analyses/<cell>/: `dema surgery` and `dema decay` on a DeMa "
    f"cell's final weights) instead of runs: each cell gives one difference (the intact score minus the score "
    f"with the attention zeroed in every layer; the exponential fit's R² minus the power law's, in percentage "
    f"points, mean over layers), judged as above without the sensitivity reads."
)


def hierarchical_bootstrap(diffs, datasets) -> tuple[float, float, float]:
    """(estimate, low, high) of the mean paired difference, datasets weighted equally: the mean of the
    per-dataset means, and the percentile 95% interval of the same statistic when the datasets are
    resampled with replacement and then, within each drawn dataset, its pairs. With one dataset it is
    the plain bootstrap of that dataset's pairs."""
    groups: dict[str, list[float]] = defaultdict(list)
    for dataset, diff in zip(datasets, diffs):
        groups[dataset].append(float(diff))
    values = [np.asarray(v) for _, v in sorted(groups.items())]
    n_sets = len(values)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    drawn = rng.integers(0, n_sets, size=(BOOTSTRAP_RESAMPLES, n_sets))  # which dataset fills each slot
    # every dataset's resampled mean for every (resample, slot), so a dataset drawn twice into one
    # resample gets two independent draws of its seeds: (n_sets, resamples, slots)
    means = np.stack([v[rng.integers(0, len(v), size=(BOOTSTRAP_RESAMPLES, n_sets, len(v)))].mean(axis=-1)
                      for v in values])
    resamples = np.take_along_axis(means, drawn[None], axis=0)[0].mean(axis=1)  # (resamples,)
    low, high = np.percentile(resamples, [2.5, 97.5])
    return float(np.mean([v.mean() for v in values])), float(low), float(high)


def enough(pairs: int, datasets: int, one_game: bool = False) -> bool:
    """Is there enough evidence for a verdict other than "inconclusive (n pairs)"?"""
    return pairs >= MIN_PAIRS and (one_game or datasets >= MIN_DATASETS)


def verdict_of(low: float, high: float, kind: str, pairs: int, datasets: int, one_game: bool = False) -> str:
    """kind "beats": threshold 0; kind "at_least": threshold -MARGIN (see RULE)."""
    if not enough(pairs, datasets, one_game):
        return f"inconclusive ({pairs} pair{'' if pairs == 1 else 's'})"
    threshold = 0.0 if kind == "beats" else -MARGIN
    if low > threshold:
        return "supported"
    if high < threshold:
        return "not supported"
    return "inconclusive"


def threshold_of(kind: str) -> float:
    return 0.0 if kind == "beats" else -MARGIN


def random_level(dataset: str) -> float:
    """The normalised score of random play on a dataset's environment (see RANDOM_PLAY_RETURN)."""
    game = dataset.split("/")[-1]
    if game in RANDOM_PLAY_RETURN and game in ATARI_SCORES:
        low, high = ATARI_SCORES[game]
        return 100.0 * (RANDOM_PLAY_RETURN[game] - low) / (high - low)
    return 0.0


def learned(scores: list[float], episode_std: float | None = None, episodes: int | None = None,
            level: float = 0.0) -> bool:
    """Is the mean of these final scores (one per seed) above `level` by LEARNED_SE standard errors?
    The standard error is over seeds; with one seed, over that run's evaluation episodes, and with
    neither known the run counts as learned (nothing shows it is not)."""
    mean = statistics.mean(scores)
    if len(scores) > 1:
        se = statistics.stdev(scores) / math.sqrt(len(scores))
    elif episode_std is not None and episodes:
        se = episode_std / math.sqrt(episodes)
    else:
        return True
    return mean > level + LEARNED_SE * se
