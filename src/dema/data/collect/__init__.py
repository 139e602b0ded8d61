"""`dema collect`: D4RL-format datasets collected here, from real policies in real simulators.

Read in this order: `policies` (numpy actors from .npz files and SB3 zips), `rollout` (N vectorised
env copies -> D4RL arrays, one stream per copy), `recipes` (D4RL-named recipes: which policy, noise
and size), `writer` (atomic hdf5 with metadata), `collector` (recipe -> file), `maze` (PointMaze
with D4RL's waypoint controller), `sac_replay` (SAC's whole replay buffer, resumable), `atari/` (Atari
games in the DQN-replay layout), `cli`.
docs/DATASETS.md describes the recipes and the collected datasets.
"""
