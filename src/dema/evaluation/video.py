"""Videos of evaluation episodes (`dema eval RUN --video N`, the GIF of `dema demo`).

The frames are taken in the rollout loop (`dema.evaluation.rollout`), whatever the agent acts:
the loop hands each recorded environment's picture to an `EpisodeRecorder` after the reset and
after every step. A family of environments says how it gives pictures (`FrameSource`): MuJoCo
renders the environments chosen for recording off-screen, each in a child process
(`dema.evaluation.rendering`); an Atari frame is the observation itself, the newest 84x84 frame of
the stack, what the policy sees. Rendering reads the simulator's state and never writes it, and
the agent sees the same observations either way, so a recorded episode plays exactly as it would
unrecorded (tested: the same returns with and without `--video`).

Each frame carries the step and the return so far, drawn with Pillow (which matplotlib already
requires). MuJoCo renders at the simulator's rate (125 frames per simulated second on Hopper);
every k-th step is kept, so that a video plays at real speed at no more than `MAX_FPS`, and the
last step of an episode always is, with its final return. MP4 goes through imageio and the ffmpeg
that the imageio-ffmpeg wheel ships (the `video` extra); GIF through Pillow alone, so that `dema
demo` writes its GIF on a plain install.

While the episodes play, the files go to a temporary folder (`Recording`); they are moved into
place only once the evaluation has finished, so a failed evaluation leaves the run as it was.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from dema.errors import ConfigError
from dema.run import RunDir

FORMATS = ("mp4", "gif")
DEFAULT_SIZE = {"mp4": 480, "gif": 240}  # pixels per side; a GIF is kept small for READMEs and chats
MAX_FPS = 30


@dataclass(frozen=True)
class VideoRequest:
    """The episodes to record, of the final checkpoint's evaluation: the `first` N played at the first
    target (seed by seed), or the `episodes` named as (target, seed, episode), `episode` counting
    that seed's episodes from 0; in `fmt` (mp4 or gif), frames about `size` pixels per side (0: the
    format's default)."""

    first: int = 0
    episodes: tuple[tuple[float, int, int], ...] = ()
    fmt: str = "mp4"
    size: int = 0

    @property
    def pixels(self) -> int:
        return self.size or DEFAULT_SIZE[self.fmt]

    def resolved(self, target: float, seeds, episodes: int) -> "VideoRequest":
        """`first` turned into the episodes it means, for an evaluation of `episodes` x `seeds` at `target`
        first; a ConfigError when it asks for more than that."""
        order = [(target, seed, j) for seed in seeds for j in range(episodes)]
        if self.first > len(order):
            raise ConfigError(f"--video {self.first} asks for more episodes than the evaluation plays at its first "
                              f"target ({episodes} episodes x {len(order) // max(episodes, 1)} seeds); lower --video "
                              "or raise --episodes")
        return replace(self, first=0, episodes=self.episodes + tuple(order[:self.first]))


def check_format(fmt: str, installed: bool = True) -> None:
    """A known format (and, with `installed`, its writer installed: MP4 needs the `video` extra), else a
    ConfigError."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown video format {fmt!r}; choose {' or '.join(FORMATS)} (--video-format)")
    if installed and fmt == "mp4":
        try:
            import imageio  # noqa: F401
            import imageio_ffmpeg

            imageio_ffmpeg.get_ffmpeg_exe()
        except Exception as exc:  # ImportError, or a wheel without its ffmpeg binary (RuntimeError)
            raise ConfigError(f"MP4 videos need imageio and imageio-ffmpeg ({type(exc).__name__}: {exc}); "
                              'pip install -e ".[video]", or --video-format gif (Pillow only)') from None


# ----------------------------------------------------------------------------- frames


@dataclass(frozen=True)
class FrameSource:
    """How a family of environments gives pictures: `frame(envs, obs, i)` is environment i of the vector
    after its last step, an (H, W, 3) or (H, W) uint8 array; `fps(envs, i)` its frames per simulated second."""

    frame: Callable
    fps: Callable


def annotate(frame: np.ndarray, step: int, return_so_far: float, size: int) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 -> (H', W', 3) uint8: grey made RGB, a small frame (Atari's 84x84)
    enlarged by a whole factor towards `size` (nearest pixel), the step and return drawn at the top left."""
    from PIL import Image, ImageDraw, ImageFont

    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)  # (H, W) -> (H, W, 3)
    scale = max(1, size // max(frame.shape[:2]))
    if scale > 1:
        frame = frame.repeat(scale, axis=0).repeat(scale, axis=1)  # (H, W, 3) -> (sH, sW, 3)
    image = Image.fromarray(np.ascontiguousarray(frame[:, :, :3], dtype=np.uint8))
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.load_default(size=max(10, image.height // 22))  # Pillow >= 10.1 with FreeType
    except (TypeError, OSError, ImportError):
        font = ImageFont.load_default()  # a fixed-size bitmap font: smaller, still legible
    text = f"step {step}  return {return_so_far:.1f}"
    left, top, right, bottom = draw.textbbox((6, 4), text, font=font)
    draw.rectangle((left - 4, top - 3, right + 4, bottom + 3), fill=(0, 0, 0))
    draw.text((6, 4), text, fill=(255, 255, 255), font=font)
    return np.asarray(image)


class _Mp4:
    def __init__(self, path: Path, fps: float):
        import imageio.v2 as imageio

        # macro_block_size 2: yuv420p needs even sides, which every size here has; the default 16
        # would rescale frames (and warn) whose sides are not multiples of 16
        self.writer = imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                         pixelformat="yuv420p", quality=6, macro_block_size=2)

    def add(self, frame: np.ndarray) -> None:
        self.writer.append_data(frame)

    def close(self) -> None:
        self.writer.close()


class _Gif:
    """Pillow writes a GIF from all its frames at once: they are kept as 64-colour palette images
    (one byte per pixel), quantised without dithering, which also keeps the file small."""

    def __init__(self, path: Path, fps: float):
        self.path, self.frames = path, []
        self.ms_per_frame = 10 * round(100 / fps)  # a GIF counts time in hundredths of a second

    def add(self, frame: np.ndarray) -> None:
        from PIL import Image

        self.frames.append(Image.fromarray(frame).quantize(64, dither=Image.Dither.NONE))

    def close(self) -> None:
        if not self.frames:
            return
        first, *rest = self.frames
        first.save(self.path, save_all=True, append_images=rest, duration=self.ms_per_frame, loop=0)


# ----------------------------------------------------------------------------- recording


@dataclass
class _Take:
    """One episode being recorded: its writer, every how many steps it keeps a frame, its file."""

    writer: object
    stride: int
    path: Path
    episode: int


@dataclass
class EpisodeRecorder:
    """Records episodes `wanted` (indices among the `n` episodes one call of `run_episodes` plays) into
    `folder`, named by `name(episode)` (with the extension); `done` lists what it wrote (path, episode, return, length)."""

    wanted: frozenset[int]
    folder: Path
    name: Callable[[int], str]
    fmt: str
    size: int
    done: list[dict] = field(default_factory=list)

    def in_round(self, first_episode: int, num_envs: int) -> list[int]:
        """The environments of a round (of episodes first_episode...) that play a wanted episode."""
        return [i for i in range(num_envs) if first_episode + i in self.wanted]

    def film(self, first_episode: int, num_envs: int, frames: FrameSource) -> "Film":
        return Film(self, first_episode, self.in_round(first_episode, num_envs), frames)


class Film:
    """The recorded environments of one round: `begin` after the reset, `after_step` after each step,
    `close` at the round's end (whatever happened: it stops the writers of unfinished episodes)."""

    def __init__(self, recorder: EpisodeRecorder, first_episode: int, envs_recorded: list[int], frames: FrameSource):
        self.recorder, self.first, self.frames = recorder, first_episode, frames
        self.takes: dict[int, _Take] = {}
        self.envs_recorded = envs_recorded

    def begin(self, envs, obs) -> None:
        rec = self.recorder
        for i in self.envs_recorded:
            fps = float(self.frames.fps(envs, i))
            stride = max(1, math.ceil(fps / MAX_FPS))
            episode = self.first + i
            path = rec.folder / rec.name(episode)
            writer = (_Mp4 if rec.fmt == "mp4" else _Gif)(path, fps / stride)
            self.takes[i] = _Take(writer, stride, path, episode)
            self._show(i, envs, obs, 0, 0.0)

    def after_step(self, envs, obs, returns: np.ndarray, lengths: np.ndarray, stepped: np.ndarray,
                   ended: np.ndarray) -> None:
        """`stepped`: the environments whose episode this step belonged to; `ended`: those it ended."""
        for i, take in list(self.takes.items()):
            if not stepped[i]:
                continue
            if lengths[i] % take.stride == 0 or ended[i]:
                self._show(i, envs, obs, int(lengths[i]), float(returns[i]))
            if ended[i]:
                take.writer.close()
                self.recorder.done.append({"path": take.path, "episode": take.episode, "return": float(returns[i]),
                                           "length": int(lengths[i])})
                del self.takes[i]

    def close(self) -> None:
        for take in self.takes.values():
            take.writer.close()
        self.takes.clear()

    def _show(self, i: int, envs, obs, step: int, return_so_far: float) -> None:
        frame = self.frames.frame(envs, obs, i)
        self.takes[i].writer.add(annotate(np.asarray(frame), step, return_so_far, self.recorder.size))


class Recording:
    """The videos of one evaluation, in a temporary folder until `place` moves them (with `with`: the
    folder is removed at the end, whatever happened)."""

    def __init__(self, request: VideoRequest, checkpoint: str = "final"):
        check_format(request.fmt)
        self.request, self.checkpoint = request, checkpoint
        self.recorders: list[tuple[float, int, EpisodeRecorder]] = []

    def __enter__(self) -> "Recording":
        self.folder = Path(tempfile.mkdtemp(prefix="dema-video-"))
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def recorder(self, target: float, seed: int) -> EpisodeRecorder | None:
        """The recorder of the episodes at (target, seed), or None when none of them is wanted."""
        wanted = frozenset(j for t, s, j in self.request.episodes if t == target and s == seed)
        if not wanted:
            return None
        name = lambda j: RunDir.video_name(self.checkpoint, target, seed, j, self.request.fmt)
        recorder = EpisodeRecorder(wanted, self.folder, name, self.request.fmt, self.request.pixels)
        self.recorders.append((target, seed, recorder))
        return recorder

    def place(self, folder: Path, relative_to: Path | None = None) -> list[dict]:
        """Move the finished videos into `folder` (each file atomically); one entry per video: file (relative
        to `relative_to` when inside it), target, seed, episode, return, length."""
        from dema.files import atomic_write

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        placed = []
        for target, seed, recorder in self.recorders:
            for video in sorted(recorder.done, key=lambda v: v["episode"]):
                path = atomic_write(folder / video["path"].name, lambda tmp: shutil.copyfile(video["path"], tmp))
                shown = path.relative_to(relative_to) if relative_to and path.is_relative_to(relative_to) else path
                placed.append({"file": str(shown), "target": target, "seed": seed, "episode": video["episode"],
                               "return": video["return"], "length": video["length"]})
        return placed
