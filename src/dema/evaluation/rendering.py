"""Off-screen pictures of MuJoCo environments, rendered in a child process.

`RenderedEnv` is a Gymnasium environment whose simulator runs in a process of its own, made there
with `render_mode="rgb_array"`; the rollout's vector steps it like any other environment (the same
`gym.make`, seeds and actions, observations passed back exactly), and `render()` returns its frame.
Why a child: the OpenGL libraries a renderer loads stay out of dema's process. Mesa's software
EGL carries its own LLVM, and a process that has loaded it crashes when it later imports Triton
(which carries another; the order Triton then Mesa works), so rendering in the process that
acts would make `dema eval --video`, or any test after a recording, fail on an unrelated import.
The child also is the only process that needs MUJOCO_GL.

`offscreen_backend()` chooses the OpenGL backend for the user: their own MUJOCO_GL if set, else
EGL, else OSMesa, each tried in a child process (`_probe`); where none renders, one line says which
system package provides one.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

from dema.errors import ConfigError, DemaError

import gymnasium as gym

# (MUJOCO_GL value, the Debian/Ubuntu package that provides it)
BACKENDS = (("egl", "libegl1"), ("osmesa", "libosmesa6"))

# Renders one frame of a one-geom scene: what recording needs from a backend, in a few hundred ms.
_PROBE = """
import mujoco
model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='1'/></worldbody></mujoco>")
with mujoco.Renderer(model, 16, 16) as renderer:
    renderer.update_scene(mujoco.MjData(model))
    renderer.render()
"""
_found: dict[str, str] = {}  # the backend found in this process (a probe costs a Python start)


def _probe(backend: str) -> str | None:
    """None when MuJoCo renders off-screen with `backend`, else the last line of why not. In a child
    process, like the rendering itself; and a backend that fails to start would leave PyOpenGL bound
    to its platform (mujoco.egl sets PYOPENGL_PLATFORM) in the process that tried it."""
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE], env={**os.environ, "MUJOCO_GL": backend},
                              capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
    if done.returncode == 0:
        return None
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return (lines[-1] if lines else f"exit status {done.returncode}")[:160]


def offscreen_backend() -> str:
    """The MUJOCO_GL value MuJoCo renders off-screen with here: the user's own MUJOCO_GL if set, else
    EGL, else OSMesa. A ConfigError naming the system package to install when none renders."""
    if "backend" in _found:
        return _found["backend"]
    own = os.environ.get("MUJOCO_GL")
    if own:
        why = _probe(own)
        if why:
            raise ConfigError(f"MuJoCo cannot render off-screen with MUJOCO_GL={own} (set in your environment): "
                              f"{why}; unset MUJOCO_GL to let dema choose EGL or OSMesa")
        _found["backend"] = own
        return own
    problems = []
    for backend, _package in BACKENDS:
        why = _probe(backend)
        if why is None:
            _found["backend"] = backend
            return backend
        problems.append(f"{backend}: {why}")
    raise ConfigError("recording MuJoCo needs an off-screen OpenGL backend and none starts here ("
                      + "; ".join(problems) + "); install EGL (apt install libegl1) or OSMesa (apt install libosmesa6)")


def _child_environment(backend: str) -> dict:
    """The environment variables of a rendering child: this process's, with MUJOCO_GL where the user
    has not set it, and this copy of dema first on the path (it may be imported from a checkout)."""
    import dema

    env = dict(os.environ)
    # MuJoCo takes its OpenGL backend only from the environment: gymnasium's renderer reads MUJOCO_GL
    # when it makes its first context, mujoco's own GLContext when mujoco is imported, and neither
    # has an argument for it. So it is set for the child that renders, and only there.
    env.setdefault("MUJOCO_GL", backend)
    source = str(Path(dema.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
    return env


class RenderedEnv(gym.Env):
    """`gym.make(gym_id, render_mode="rgb_array", width=size, height=size, **make_kwargs)` in a child
    process (module docstring): reset, step and close are forwarded, `render()` returns (size, size, 3)
    uint8. The child is a fresh interpreter (`python -m dema.evaluation.rendering`), not a fork of this
    one (which would copy its threads' state) nor multiprocessing's spawn (which re-imports the
    caller's main script), talking over a socket pair."""

    def __init__(self, gym_id: str, size: int, **make_kwargs):
        self._conn, child_end = multiprocessing.Pipe()
        self._name = f"the process rendering {gym_id}"
        command = [sys.executable, "-m", "dema.evaluation.rendering", str(child_end.fileno())]
        self._process = subprocess.Popen(command, pass_fds=(child_end.fileno(),), stdin=subprocess.DEVNULL,
                                         env=_child_environment(offscreen_backend()))
        child_end.close()
        self._conn.send((gym_id, size, make_kwargs))
        self.observation_space, self.action_space, self.metadata, self.spec = self._answer()
        self.render_mode = "rgb_array"

    def reset(self, *, seed=None, options=None):
        return self._call("reset", seed=seed, options=options)

    def step(self, action):
        return self._call("step", action)

    def render(self):
        return self._call("render")

    def close(self):
        if self._process.poll() is None:
            try:
                self._conn.send(("close", (), {}))
                self._process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()  # our own child, stuck: nothing of it to keep
                self._process.wait()
        self._conn.close()

    def _call(self, method: str, *args, **kwargs):
        self._conn.send((method, args, kwargs))
        return self._answer()

    def _answer(self):
        try:
            ok, value = self._conn.recv()
        except EOFError:
            raise DemaError(f"{self._name} ended unexpectedly (exit status {self._process.wait()})") from None
        if not ok:
            raise DemaError(f"rendering failed in {self._name}: {value}")
        return value


def _serve(conn) -> None:
    """The child: one environment, made from the first message, then commands until "close"."""
    gym_id, size, make_kwargs = conn.recv()
    try:
        env = gym.make(gym_id, render_mode="rgb_array", width=size, height=size, **make_kwargs)
        conn.send((True, (env.observation_space, env.action_space, env.metadata, env.spec)))
    except Exception as exc:  # the parent raises it as one line
        conn.send((False, f"{type(exc).__name__}: {exc}"))
        return
    while True:
        try:
            method, args, kwargs = conn.recv()
        except EOFError:  # the parent is gone without a "close"
            method = "close"
        if method == "close":
            env.close()
            return
        try:
            conn.send((True, _following(env) if method == "render" else getattr(env, method)(*args, **kwargs)))
        except Exception as exc:
            conn.send((False, f"{method}: {type(exc).__name__}: {exc}"))


def _following(env):
    """env.render() with the camera over the body it should follow. Gymnasium's MuJoCo renderer draws
    its default view with a free camera, which ignores the `trackbodyid` of the environment's camera
    config (Farama-Foundation/Gymnasium#1141): a hopper or a cheetah leaves the picture within a
    few hundred steps. The free camera's point of view is moved, in x and y, to the centre of mass
    of that body's subtree (what MuJoCo's tracking camera looks at), or of the root body (1) where
    the config names none (HalfCheetah); height, distance and angles stay the environment's. An
    environment that is not a Gymnasium MujocoEnv (PointMaze shows its whole maze) renders as it is."""
    renderer = getattr(env.unwrapped, "mujoco_renderer", None)
    if renderer is None:
        return env.render()
    if renderer.viewer is None:
        env.render()  # makes the viewer (and its camera, from the environment's config)
    body = (renderer.default_cam_config or {}).get("trackbodyid", 1)
    renderer.viewer.cam.lookat[:2] = env.unwrapped.data.subtree_com[body][:2]
    return env.render()


if __name__ == "__main__":
    from multiprocessing.connection import Connection

    _serve(Connection(int(sys.argv[1])))
