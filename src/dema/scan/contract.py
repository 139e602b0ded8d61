"""mamba-ssm's `selective_scan_fn` contract, checked once for every scan path.

The shapes accepted (mamba_ssm.ops.selective_scan_interface.selective_scan_ref's docstring):

    u, delta, z        (batch, dim, L)
    A                  (dim, dstate), real
    D, delta_bias      (dim,)
    B and C, each      (dim, dstate)                time-invariant: one vector per channel
                       (batch, dstate, L)           input-dependent, shared by all channels (S6, DeMa)
                       (batch, groups, dstate, L)   grouped: channel d reads group d // (dim / groups)

Anything else is one ValueError that names the shapes and these forms, raised before any kernel
runs (a kernel indexing a misfit array would raise an IndexError or a Numba TypingError instead).

A complex A (mamba-ssm's complex mode, where an input-dependent B or C carries 2L interleaved real
and imaginary parts) is refused with one ValueError: DeMa and Mamba-1 language models use a real A,
and supporting it would double every kernel for a mode nobody here uses.

Dtypes, as mamba-ssm: the recurrence runs in float32 for float16, bfloat16 and float32 inputs (in
float64 if any input is float64, which the tests use as ground truth); the output has u's dtype and
the last state the compute dtype (mamba-ssm keeps its state in float32 too). Gradients come back in
each input's own dtype, because every path casts with differentiable `.to()` outside its kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

TIME_INVARIANT, INPUT_DEPENDENT, GROUPED = "time-invariant", "input-dependent", "grouped"

ACCEPTED = ("u, delta and z (batch, dim, L); A (dim, dstate), real; D and delta_bias (dim,); B and C each "
            "(dim, dstate) time-invariant, (batch, dstate, L) input-dependent, or (batch, groups, dstate, L) "
            "grouped with dim divisible by groups")

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class Operand:
    """How B or C is laid out: its form, and how many groups the channels are split over."""

    kind: str
    groups: int  # 1 input-dependent, G grouped, dim time-invariant (each channel its own vector)

    def channels_per_group(self, dim: int) -> int:
        return dim // self.groups


def _shape(t) -> str:
    return "None" if t is None else str(tuple(t.shape))


def _operand(X, batch: int, dim: int, length: int, d_state: int, name: str, problems: list) -> Operand | None:
    """The form of B or C, or None with the reason appended to `problems`."""
    shape = tuple(X.shape)
    if shape == (dim, d_state):
        return Operand(TIME_INVARIANT, dim)
    if shape == (batch, d_state, length):
        return Operand(INPUT_DEPENDENT, 1)
    if X.dim() == 4 and shape[0] == batch and shape[2:] == (d_state, length) and shape[1] >= 1:
        if dim % shape[1] == 0:
            return Operand(GROUPED, shape[1])
        problems.append(f"{name} has {shape[1]} groups, which do not divide dim {dim}")
        return None
    problems.append(f"{name} {shape} is none of (dim, dstate) = {(dim, d_state)}, (batch, dstate, L) = "
                    f"{(batch, d_state, length)}, (batch, groups, dstate, L) = {(batch, 'groups', d_state, length)}")
    return None


def _refuse_complex(tensors: dict) -> None:
    complex_ = [name for name, t in tensors.items() if t is not None and t.is_complex()]
    if complex_:
        raise ValueError(
            f"selective scan: {', '.join(complex_)} complex ({tensors[complex_[0]].dtype}); dema's scans take real "
            "tensors only. mamba-ssm's complex mode (a complex A, with B and C of 2L interleaved real and imaginary "
            "parts) is not supported: use a real A (as Mamba-1 and DeMa do), or mamba-ssm's own selective_scan_fn "
            "on CUDA, which selective_scan_fn calls when mamba-ssm is installed.")


def check(u, delta, A, B, C, D=None, z=None, delta_bias=None, initial_state=None) -> tuple[Operand, Operand]:
    """The forms of (B, C); raises one ValueError naming every shape and the accepted forms."""
    tensors = {"u": u, "delta": delta, "A": A, "B": B, "C": C, "D": D, "z": z, "delta_bias": delta_bias,
               "initial_state": initial_state}
    _refuse_complex(tensors)
    problems = [f"{name} has dtype {t.dtype}, not floating point" for name, t in tensors.items()
                if t is not None and t.dtype not in _FLOATS]
    problems += [f"{name} is on {t.device}, u on {u.device}" for name, t in tensors.items()
                 if t is not None and t.device != u.device]
    forms = (None, None)
    if u.dim() != 3 or A.dim() != 2 or min(u.shape, default=0) < 1 or min(A.shape, default=0) < 1:
        problems.append("u must be (batch, dim, L) and A (dim, dstate), all sizes at least 1")
    else:
        batch, dim, length = u.shape
        d_state = A.shape[1]
        if A.shape[0] != dim:
            problems.append(f"A has {A.shape[0]} rows for dim {dim}")
        for name in ("delta", "z"):
            if tensors[name] is not None and tensors[name].shape != u.shape:
                problems.append(f"{name} must have u's shape")
        for name in ("D", "delta_bias"):
            if tensors[name] is not None and tuple(tensors[name].shape) != (dim,):
                problems.append(f"{name} must be (dim,) = ({dim},)")
        if initial_state is not None and tuple(initial_state.shape) != (batch, dim, d_state):
            problems.append(f"initial_state must be (batch, dim, dstate) = {(batch, dim, d_state)}")
        forms = (_operand(B, batch, dim, length, d_state, "B", problems),
                 _operand(C, batch, dim, length, d_state, "C", problems))
    if problems:
        shapes = ", ".join(f"{name} {_shape(t)}" for name, t in tensors.items() if t is not None)
        raise ValueError(f"selective scan: {'; '.join(problems)}. Got {shapes}. Accepted: {ACCEPTED}.")
    return forms


def compute_dtype(*tensors) -> torch.dtype:
    """float64 if any input is float64, else float32 (half and bfloat16 are scanned in float32)."""
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) else torch.float32


def cast_inputs(dtype, *tensors) -> list:
    """Each tensor (or None) in the compute dtype; `.to` is differentiable, so gradients come back
    in each input's own dtype."""
    return [None if t is None else t.to(dtype) for t in tensors]


def grouped_view(X: torch.Tensor, form: Operand) -> torch.Tensor:
    """An input-dependent or grouped B/C as (batch, groups, dstate, L): a view, no copy."""
    return X[:, None] if form.kind == INPUT_DEPENDENT else X  # (batch, N, L) -> (batch, 1, N, L)


def per_channel(X: torch.Tensor, form: Operand, dim: int) -> torch.Tensor:
    """B/C broadcastable to (batch, dim, dstate, L): (1, dim, N, 1) time-invariant, (batch, 1, N, L)
    input-dependent, (batch, dim, N, L) grouped (repeated over each group's channels: a copy).
    Differentiable: autograd sums the gradient back over the broadcast and repeated entries."""
    if form.kind == TIME_INVARIANT:
        return X[None, :, :, None]  # (dim, N) -> (1, dim, N, 1)
    if form.kind == INPUT_DEPENDENT:
        return X[:, None]  # (batch, N, L) -> (batch, 1, N, L)
    return X.repeat_interleave(form.channels_per_group(dim), dim=1)  # (batch, G, N, L) -> (batch, dim, N, L)
