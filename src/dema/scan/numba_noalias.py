"""Numba kernels whose array arguments LLVM may assume never overlap (`noalias`).

Numba passes each array's data pointer to LLVM as a plain pointer, so a loop that writes one array
and reads others gets a runtime alias check in front of its vector body: LLVM compares the address
ranges of every written array with every other array the loop touches and falls back to a scalar
loop if any overlap. The backward's adjoint loop writes six arrays and reads ten: its check was 240
lines of IR with 96 comparisons, run for every pair of channels at every step, beside 8 vector
iterations of about 93 lines at N 64 (docs/PERFORMANCE.md, "Long sequences").

Numba can mark the pointer arguments `noalias`, but only through a compiler flag (`Flags.noalias`,
which its parfors lowering sets after its own alias analysis), not an `njit` option. `NoAliasCompiler`
is Numba's default nopython pipeline with one pass added that sets the flag; `njit(pipeline_class=
NoAliasCompiler)` compiles a kernel with it. The arithmetic is unchanged (LLVM only skips the checks,
which had always passed): outputs are bit-identical.

The contract this places on the callers: no array argument of such a kernel may share memory with
another argument that the kernel writes while both are accessed. Read-only arguments may share
memory (the scan passes u for an absent z), and an argument the kernel never reads may alias
anything (the forward's h0 without an initial state). tests/scan/test_scan_noalias.py checks every
call the scan and the SSM node make against it.
"""

from __future__ import annotations

from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.compiler_machinery import FunctionPass, register_pass
from numba.core.typed_passes import NopythonTypeInference


@register_pass(mutates_CFG=False, analysis_only=False)
class _ArgumentsDoNotAlias(FunctionPass):
    """Sets Flags.noalias, which puts LLVM's `noalias` on the lowered function's pointer arguments."""

    _name = "dema_arguments_do_not_alias"

    def __init__(self):
        FunctionPass.__init__(self)

    def run_pass(self, state):
        state.flags.noalias = True
        return False  # the IR is unchanged; only the lowering reads the flag


class NoAliasCompiler(CompilerBase):
    """Numba's nopython pipeline, with `noalias` on the compiled function's pointer arguments."""

    def define_pipelines(self):
        pipeline = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pipeline.add_pass_after(_ArgumentsDoNotAlias, NopythonTypeInference)
        pipeline.finalize()
        return [pipeline]
