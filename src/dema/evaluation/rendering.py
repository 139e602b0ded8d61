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


class RenderedEnv(gym.Env):
    """`gym.make(gym_id, render_mode="rgb_array", width=size, height=size, **make_kwargs)` in a child
    process (module docstring): reset, step and close are forwarded, `render()` returns (size, size, 3)
    uint8. The child starts with `spawn`: a fork would copy this process's torch threads' state."""

    def __init__(self, gym_id: str, size: int, **make_kwargs):
        backend = offscreen_backend()
        context = multiprocessing.get_context("spawn")
        self._conn, child_end = context.Pipe()
        self._process = context.Process(target=_serve, args=(child_end, backend, gym_id, size, make_kwargs),
                                        daemon=True, name=f"dema-render-{gym_id}")
        self._process.start()
        child_end.close()
        self.observation_space, self.action_space, self.metadata, self.spec = self._answer()
        self.render_mode = "rgb_array"

    def reset(self, *, seed=None, options=None):
        return self._call("reset", seed=seed, options=options)

    def step(self, action):
        return self._call("step", action)

    def render(self):
        return self._call("render")

    def close(self):
        if self._process.is_alive():
            try:
                self._conn.send(("close", (), {}))
            except OSError:
                pass
            self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.kill()  # our own child, stuck: nothing else to save
        self._conn.close()

    def _call(self, method: str, *args, **kwargs):
        self._conn.send((method, args, kwargs))
        return self._answer()

    def _answer(self):
        try:
            ok, value = self._conn.recv()
        except EOFError:
            raise DemaError(f"the process rendering {self._process.name} ended unexpectedly "
                            f"(exit code {self._process.exitcode})") from None
        if not ok:
            raise DemaError(f"rendering failed in {self._process.name}: {value}")
        return value


def _serve(conn, backend: str, gym_id: str, size: int, make_kwargs: dict) -> None:
    """The child: one environment, commands from the pipe until "close"."""
    # MuJoCo takes its OpenGL backend only from the environment: gymnasium's renderer reads MUJOCO_GL
    # when it makes its first context, mujoco's own GLContext when mujoco is imported, and neither has
    # an argument for it. Set here, in the process that renders, and only where the user has not.
    os.environ.setdefault("MUJOCO_GL", backend)
    try:
        env = gym.make(gym_id, render_mode="rgb_array", width=size, height=size, **make_kwargs)
        conn.send((True, (env.observation_space, env.action_space, env.metadata, env.spec)))
    except Exception as exc:  # the parent raises it as one line
        conn.send((False, f"{type(exc).__name__}: {exc}"))
        return
    while True:
        method, args, kwargs = conn.recv()
        if method == "close":
            env.close()
            return
        try:
            conn.send((True, getattr(env, method)(*args, **kwargs)))
        except Exception as exc:
            conn.send((False, f"{method}: {type(exc).__name__}: {exc}"))
