"""The reference scores of other papers (`REFERENCES`), each with its source: shown beside ours as
context only."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    dataset: str  # as parse_dataset(...).base spells it: "hopper-medium", "breakout", "maze2d-umaze"
    figure: str  # "DT paper", "CORL DT final", "CORL DT best", ...
    value: float  # normalised score (D4RL-normalised; gamer-normalised on Atari)
    source: str


_DT = ("Chen et al., Decision Transformer, NeurIPS 2021 (arXiv 2106.01345), Table 2: "
       "D4RL v2 gym datasets, 3 seeds")
_DT_ATARI = ("Chen et al., Decision Transformer, NeurIPS 2021 (arXiv 2106.01345), Table 1: "
             "Atari 1% DQN-replay, gamer-normalised, 3 seeds")
_CORL = ("Tarasov et al., CORL: Research-oriented Deep Offline RL Library, NeurIPS 2023 D&B "
         "(arXiv 2210.07105), DT on D4RL v2 gym: score of the last weights (final) and best over training")
_CORL_MAZE = ("Tarasov et al., CORL (arXiv 2210.07105), DT on D4RL maze2d v1: last weights (final) "
              "and best over training")


def _refs(figure: str, source: str, values: dict[str, float]) -> list[Reference]:
    return [Reference(dataset, figure, value, source) for dataset, value in values.items()]


# The ONE table of reference scores that exist as text (other papers' data, not ours).
REFERENCES: tuple[Reference, ...] = tuple(
    _refs("DT paper", _DT, {
        "halfcheetah-medium": 42.6, "hopper-medium": 67.6, "walker2d-medium": 74.0,
        "halfcheetah-medium-replay": 36.6, "hopper-medium-replay": 82.7, "walker2d-medium-replay": 66.6,
        "halfcheetah-medium-expert": 86.8, "hopper-medium-expert": 107.6, "walker2d-medium-expert": 108.1})
    + _refs("CORL DT final", _CORL, {
        "halfcheetah-medium": 42.20, "hopper-medium": 65.10, "walker2d-medium": 67.63,
        "halfcheetah-medium-replay": 38.91, "hopper-medium-replay": 81.77, "walker2d-medium-replay": 59.86,
        "halfcheetah-medium-expert": 91.55, "hopper-medium-expert": 110.44, "walker2d-medium-expert": 107.11})
    + _refs("CORL DT best", _CORL, {
        "halfcheetah-medium": 42.73, "hopper-medium": 69.42, "walker2d-medium": 74.70,
        "halfcheetah-medium-replay": 40.31, "hopper-medium-replay": 88.74, "walker2d-medium-replay": 68.22,
        "halfcheetah-medium-expert": 93.40, "hopper-medium-expert": 111.18, "walker2d-medium-expert": 108.71})
    + _refs("DT paper (Atari)", _DT_ATARI, {"breakout": 267.5, "qbert": 15.4, "pong": 106.1, "seaquest": 2.5})
    + _refs("CORL DT final", _CORL_MAZE, {"maze2d-umaze": 18.08, "maze2d-medium": 31.71, "maze2d-large": 35.66})
    + _refs("CORL DT best", _CORL_MAZE, {"maze2d-umaze": 63.83, "maze2d-medium": 68.14, "maze2d-large": 50.25})
)
