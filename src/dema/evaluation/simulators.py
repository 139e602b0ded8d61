"""The vectorised environments policies are scored in: `make_vector_env(spec, num_envs)`.

MuJoCo and PointMaze: Gymnasium's `SyncVectorEnv` over `gym.make(spec.gym_id)`, next-step autoreset;
the copies that play a recorded episode render off-screen (`frame_source`, dema.evaluation.video).

Atari: ale-py's C++ `AtariVectorEnv` under Decision Transformer's evaluation protocol (DT's Atari
code, after Kaixhin's Rainbow `Env`; the DeMa code reuses it):

- the game's minimal action set (what DQN-replay's action indices count);
- no sticky actions (repeat_action_probability 0);
- each action repeated for 4 emulator frames, the observation the pixel-wise max of the last two;
- grayscale, resized to 84x84 (area interpolation);
- 4 stacked frames, oldest first; at an episode's start the missing older frames are zero (as
  dopamine's replay buffer, and so `TrajectoryDataset(frame_stack=4)`, stacks them);
- a random number of no-op steps (0 to 30) at every reset;
- no FIRE at reset and no end of episode on a lost life (the agent must press FIRE itself);
- an episode cap of 108,000 emulator frames (27,000 decisions), as DT's `max_num_frames_per_episode`;
- raw (unclipped) rewards: scores are game scores.

The Atari collectors play the same protocol in Python, with the console RAM
(`dema.data.collect.atari.game.Game`); their frames equal these up to rounding (tested).
"""

from __future__ import annotations

from dema.envs import (ATARI_FRAME, ATARI_FRAME_SKIP, ATARI_FRAME_STACK, ATARI_MAX_FRAMES, ATARI_NOOP_MAX, EnvSpec,
                       game_name, require_ale)


def make_vector_env(spec: EnvSpec, num_envs: int, max_episode_steps: int = 0, render: tuple[int, ...] = (),
                    size: int = 480):
    """`num_envs` copies of the environment of `spec`, next-step autoreset; `max_episode_steps` > 0
    cuts episodes there (Atari: at 4 x that many emulator frames), 0 keeps the environment's limit.
    MuJoCo: the copies in `render` render off-screen frames of `size` x `size` pixels
    (dema.evaluation.rendering.RenderedEnv); an Atari observation is its own picture."""
    if spec.atari:
        max_frames = ATARI_FRAME_SKIP * max_episode_steps if max_episode_steps else ATARI_MAX_FRAMES
        return atari_vector_env(spec.name, num_envs, max_frames=max_frames)
    import gymnasium as gym

    kwargs = {"max_episode_steps": max_episode_steps} if max_episode_steps else {}

    def make(i: int):
        if i in render:
            from dema.evaluation.rendering import RenderedEnv

            return RenderedEnv(spec.gym_id, size, **kwargs)
        return gym.make(spec.gym_id, **kwargs)

    return gym.vector.SyncVectorEnv([lambda i=i: make(i) for i in range(num_envs)],
                                    autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)


def frame_source(spec: EnvSpec):
    """How the vector envs of `spec` give the pictures of a video (dema.evaluation.video.FrameSource):
    MuJoCo renders the recorded copies; an Atari picture is the newest frame of the observation's
    stack, what the policy sees, at 60 console frames a second, FRAME_SKIP of them per decision."""
    from dema.evaluation.video import FrameSource

    if spec.atari:
        return FrameSource(frame=lambda envs, obs, i: obs[i, -1], fps=lambda envs, i: 60 / ATARI_FRAME_SKIP)
    return FrameSource(frame=lambda envs, obs, i: envs.envs[i].render(),
                       fps=lambda envs, i: envs.envs[i].metadata["render_fps"])


def atari_vector_env(game: str, num_envs: int, max_frames: int = ATARI_MAX_FRAMES, stack: int = ATARI_FRAME_STACK,
                     threads: int = 1, noop_max: int = ATARI_NOOP_MAX):
    """`num_envs` copies of `game` under the DT protocol (module docstring): observations (N, stack, 84, 84)
    uint8, actions indices into the minimal action set, next-step autoreset."""
    require_ale()
    from ale_py.vector_env import AtariVectorEnv

    return AtariVectorEnv(
        game_name(game).lower(), num_envs, num_threads=threads, max_num_frames_per_episode=max_frames,
        repeat_action_probability=0.0, full_action_space=False, img_height=ATARI_FRAME[0],
        img_width=ATARI_FRAME[1], grayscale=True, stack_num=stack, frameskip=ATARI_FRAME_SKIP, maxpool=True,
        noop_max=noop_max, episodic_life=False, reward_clipping=False, use_fire_reset=False,
    )
