"""`dema collect pong scripted` / `dema collect breakout replay`: Atari data in the DQN-replay layout.

Recipes:

| recipe | what | games |
| --- | --- | --- |
| `scripted` | a controller that reads the ball and the paddle from the console RAM, its action replaced by a uniformly random one with probability epsilon; equal shares of the steps at each epsilon level (default 0.02, 0.1, 0.25, 0.5, 1), so the returns span poor to good play as a DQN run's replay does | Pong, Breakout |
| `random` | uniform actions (epsilon 1 alone) | all eight |
| `replay` | DQN (Stable-Baselines3, its Atari wrappers) trained for `--steps`, every transition it saw written in the order it saw them, as DQN-replay is | all eight |

Read in this order: `game` (one game under DT's evaluation protocol, with its RAM), `replay_writer`
(the DQN-replay folder `dema.data.formats.dqn_replay` reads), `scripted` (the scripted and random
recipes), `replay_recipe` (DQN's replay), `recipes` (`dema collect`'s arguments -> a recipe).
"""
