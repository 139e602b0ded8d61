"""Atari: DT-protocol environments, scoring, data collection and on-the-fly frame stacking."""
