"""`dema eval --video`: recorded episodes play exactly as unrecorded ones, and the files show them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from dema.cli import main
from dema.errors import ConfigError
from dema.evaluation import rendering, video
from dema.evaluation.evaluate import evaluate_run
from dema.evaluation.video import VideoRequest
from dema.train.loop import train

from train_helpers import tiny_config


@pytest.fixture(scope="module")
def renders():
    """Skips a test on a machine where MuJoCo cannot render off-screen."""
    try:
        rendering.offscreen_backend()
    except ConfigError as exc:
        pytest.skip(f"MuJoCo cannot render off-screen here: {exc}")


@pytest.fixture(scope="module")
def tiny_run(renders, tiny_dataset, tmp_path_factory):
    return train(tiny_config(tiny_dataset, tmp_path_factory.mktemp("runs"), updates=2), log=lambda line: None).run_dir


def _frames(path):
    import imageio.v2 as imageio

    with imageio.get_reader(path) as reader:
        return [np.asarray(frame) for frame in reader]


def _kept(length: int, stride: int = 5) -> int:
    """Frames of an episode of `length` steps at Hopper's stride (125 fps -> every 5th step): the reset,
    every 5th step, and the last step when it is not one of them."""
    return 1 + length // stride + (1 if length % stride else 0)


def test_recorded_episodes_score_as_unrecorded_ones(tiny_run):
    """The same returns and lengths, episode for episode, with and without two videos, and each video
    has one frame per kept step of its episode."""
    choices = dict(checkpoints=("final",), episodes=3, seeds=(0, 1), max_episode_steps=40)
    plain = evaluate_run(tiny_run, **choices)
    mujoco_gl = os.environ.get("MUJOCO_GL")
    recorded = evaluate_run(tiny_run, **choices, video=VideoRequest(first=4))
    # the rendering ran in child processes: no OpenGL library here (Mesa's would crash a later
    # `import triton`), and MUJOCO_GL was set only there
    assert os.environ.get("MUJOCO_GL") == mujoco_gl
    if Path("/proc/self/maps").is_file():
        loaded = Path("/proc/self/maps").read_text()
        assert "libEGL" not in loaded and "OSMesa" not in loaded and "libGLX" not in loaded
    for a, b in zip(plain["per_target"], recorded["per_target"]):
        assert a["returns"] == b["returns"] and a["lengths"] == b["lengths"]
    assert "videos" not in plain
    videos = recorded["videos"]
    assert [(v["seed"], v["episode"]) for v in videos] == [(0, 0), (0, 1), (0, 2), (1, 0)]  # seed by seed
    headline = recorded["per_target"][0]
    for v, j in zip(videos, (0, 1, 2, 3)):
        assert v["target"] == headline["target"] and v["file"].startswith("videos/final_target")
        assert v["return"] == headline["returns"][j] and v["length"] == headline["lengths"][j]
        frames = _frames(tiny_run / v["file"])
        assert len(frames) == _kept(v["length"]) and frames[0].shape == (480, 480, 3)
    assert sorted(p.name for p in (tiny_run / "videos").iterdir()) == [
        "final_target3600_seed0_episode0.mp4", "final_target3600_seed0_episode1.mp4",
        "final_target3600_seed0_episode2.mp4", "final_target3600_seed1_episode0.mp4"]


def test_recording_across_rounds(renders, tmp_path):
    """Episodes 1 and 4 of 5 played in rounds of 2 environments (the second of round 1, the only one of
    round 3): each recorded from its own environment, and the returns as unrecorded."""
    from PIL import Image

    from dema.envs import env_spec
    from dema.evaluation.rollout import run_episodes
    from dema.evaluation.video import EpisodeRecorder

    class Wobble:  # actions that depend on the observation: any difference in the physics shows
        def __init__(self, n):
            self.n = n

        def reset(self, target_return, seed=None):
            pass

        def act(self, obs, reward=None):
            return np.tanh(obs[:, :3] * 3.0)

    spec = env_spec("hopper")
    recorder = EpisodeRecorder(frozenset({1, 4}), tmp_path, lambda j: f"episode{j}.gif", "gif", 64)
    recorded = run_episodes(Wobble, spec, n=5, seed=7, target_return=0.0, max_envs=2, max_episode_steps=30,
                            recorder=recorder)
    plain = run_episodes(Wobble, spec, n=5, seed=7, target_return=0.0, max_envs=2, max_episode_steps=30)
    assert recorded.returns == plain.returns and recorded.lengths == plain.lengths
    assert [(v["episode"], v["return"], v["length"]) for v in recorder.done] == [
        (j, plain.returns[j], plain.lengths[j]) for j in (1, 4)]
    for j in (1, 4):
        with Image.open(tmp_path / f"episode{j}.gif") as gif:
            assert gif.n_frames == _kept(plain.lengths[j]) and gif.size == (64, 64)


def test_the_camera_follows_the_runner(renders):
    """A HalfCheetah 11 m from its start stays in the middle of the picture (gymnasium's own default
    view is a fixed free camera: it would show the empty floor), rendered in a child process."""
    from dema.evaluation.rendering import RenderedEnv

    def body(frame):  # the cheetah's orange-brown pixels: red well above blue, unlike floor and sky
        rgb = frame.astype(int)
        return np.argwhere((rgb[..., 0] > rgb[..., 2] + 40) & (rgb[..., 0] > 90))

    env = RenderedEnv("HalfCheetah-v5", 96)
    try:
        env.reset(seed=0)
        start = body(env.render())
        for t in range(200):  # a gait: back and front legs in opposite phase
            _, _, _, _, info = env.step(np.sin(0.3 * t + np.array([0, 0, 0, np.pi, np.pi, np.pi])))
        end = body(env.render())
    finally:
        env.close()
    assert info["x_position"] > 5
    assert len(start) > 30 and len(end) > len(start) / 2
    assert 24 < end[:, 1].mean() < 72  # columns: the middle half of 96


def test_eval_video_gif_from_the_command_line(tiny_run, capsys):
    from PIL import Image

    assert main(["eval", str(tiny_run), "--checkpoint", "final", "--episodes", "2", "--max-episode-steps", "12",
                 "--video", "1", "--video-format", "gif"]) == 0
    out = capsys.readouterr().out
    path = tiny_run / "videos" / "final_target3600_seed0_episode0.gif"
    assert f"wrote {path}" in out
    report = json.loads((tiny_run / "eval.json").read_text())
    assert report["videos"][0]["file"] == "videos/final_target3600_seed0_episode0.gif"
    with Image.open(path) as gif:
        assert gif.n_frames == _kept(report["videos"][0]["length"]) and gif.size == (240, 240)
        assert gif.info["duration"] == 40 and gif.info["loop"] == 0  # 125 fps / 5: 25 frames a second


def test_the_return_so_far_is_drawn_on_the_frame():
    """Different returns give different pixels in the text box at the top left, and nowhere else; a
    grey Atari frame becomes RGB, enlarged by a whole factor."""
    frame = np.full((84, 84), 120, dtype=np.uint8)
    a, b = video.annotate(frame, 7, 12.0, 240), video.annotate(frame, 7, 99.5, 240)
    assert a.shape == b.shape == (168, 168, 3) and a.dtype == np.uint8
    differ = np.argwhere((a != b).any(axis=2))
    assert len(differ) > 10 and differ[:, 0].max() < 30  # the text line only
    assert (a[100:] == 120).all()  # the picture below it is untouched
    assert video.annotate(np.zeros((50, 60, 3), np.uint8), 0, 0.0, 0).shape == (50, 60, 3)


def test_first_episodes_follow_the_evaluation_order():
    request = VideoRequest(first=3, fmt="gif").resolved(3600.0, (0, 1), 2)
    assert request.episodes == ((3600.0, 0, 0), (3600.0, 0, 1), (3600.0, 1, 0)) and request.fmt == "gif"
    with pytest.raises(ConfigError, match="--video 5 asks for more episodes"):
        VideoRequest(first=5).resolved(3600.0, (0, 1), 2)


def test_no_backend_says_which_package_provides_one(monkeypatch):
    monkeypatch.setattr(rendering, "_found", {})
    monkeypatch.setattr(rendering, "_probe", lambda backend: "cannot open display")
    with pytest.raises(ConfigError) as err:
        rendering.offscreen_backend()
    message = str(err.value)
    assert "\n" not in message and "libegl1" in message and "libosmesa6" in message


def test_a_backend_the_user_set_is_kept_or_refused(monkeypatch):
    """MUJOCO_GL set by the user is tried (in a child process) and never replaced by dema's choice."""
    monkeypatch.setattr(rendering, "_found", {})
    monkeypatch.setenv("MUJOCO_GL", "no-such-backend")
    with pytest.raises(ConfigError, match="MUJOCO_GL=no-such-backend .set in your environment."):
        rendering.offscreen_backend()
    monkeypatch.setattr(rendering, "_found", {})
    tried = []
    monkeypatch.setattr(rendering, "_probe", lambda backend: tried.append(backend))
    assert rendering.offscreen_backend() == "no-such-backend" and tried == ["no-such-backend"]
