"""The error a failed trace raises: where it broke, which untraceable pattern broke it, and only the
fixes that can work there.

torch.fx records a forward by running it on Proxies; Python itself then breaks on the few things a
Proxy cannot be: a ``bool`` (``if``/``while``/``assert`` on a traced value or size), an iterator, a
``len``, an ``int``. The message names the innermost frame of model code (not torch's, not
graphprune's), says which of these it is, and suggests rewriting that line. Keeping a module opaque
(``leaf_modules=[Kind]``) is suggested only for a submodule: the root's own forward is what the tracer
runs, so naming the root's class as a leaf can never help.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass

import torch
from torch import nn

from graphprune.errors import TraceError

_GRAPHPRUNE_DIR = os.path.dirname(os.path.abspath(__file__))
_SKIPPED_DIRS = (os.path.dirname(os.path.abspath(torch.__file__)) + os.sep, _GRAPHPRUNE_DIR + os.sep)
_SIZE_WORDS = (".shape", ".size(", ".dim(", ".ndim", "len(", ".numel(")


@dataclass(frozen=True)
class Pattern:
    """One way Python breaks on a Proxy: a substring of the exception's message, what it means, and
    how to rewrite the line."""

    marker: str
    what: str
    fix: str


_CONTROL_FLOW = "cannot be used as inputs to control flow"
PATTERNS = (
    Pattern(_CONTROL_FLOW, "Python control flow (if/while/and/or/assert) on a traced tensor value",
            "compute both branches and select with torch.where, or branch on a Python constant "
            "(a module attribute set in __init__)"),
    Pattern("cannot be iterated", "iteration over a traced tensor or size (a for loop, * or ** unpacking)",
            "loop over a Python constant (range(self.n)) or use a tensor op (x.unbind(0), torch.split)"),
    Pattern("'len' is not supported", "len() of a traced value",
            "use x.shape[0] (traced as a size) or a constant"),
    Pattern("cannot be interpreted as an integer", "a traced size used where Python needs an int "
            "(range(), a list length)", "use a size known in __init__, or a tensor op over the dim"),
    Pattern("not 'Proxy'", "a traced value converted to a Python number (int(), float())",
            "keep it a tensor or a traced size, or use a constant known in __init__"),
)
_SIZE_CONTROL_FLOW = Pattern(_CONTROL_FLOW, "Python control flow (if/while/assert) on a traced size",
                             "branch on a constant known in __init__; for a shape check use "
                             "torch._assert(cond, message), which fx records")
_UNKNOWN = Pattern("", "an operation torch.fx cannot record", "rewrite it with torch operations")


def user_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost traceback frame outside torch and graphprune: the model code that broke tracing."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if not os.path.abspath(frame.filename).startswith(_SKIPPED_DIRS):
            return frame
    return None


def pattern_of(exc: BaseException, line: str) -> Pattern:
    """Which untraceable pattern ``exc`` is; control flow on a size is told apart by the source line."""
    message = str(exc)
    for pattern in PATTERNS:
        if pattern.marker in message:
            if pattern.marker == _CONTROL_FLOW and any(word in line for word in _SIZE_WORDS):
                return _SIZE_CONTROL_FLOW
            return pattern
    return _UNKNOWN


def trace_error(model: nn.Module, failed_stack: list[str] | None, exc: BaseException) -> TraceError:
    """The one-line TraceError for ``exc``, raised while tracing the module at ``failed_stack[-1]``."""
    where = (failed_stack or [""])[-1]
    frame = user_frame(exc)
    line = (frame.line or "") if frame is not None else ""
    location = f"{frame.filename}:{frame.lineno} ({line})" if frame is not None else "an unknown line"
    pattern = pattern_of(exc, line)
    first = str(exc).splitlines()[0].split(". ")[0] if str(exc) else ""  # fx's first sentence
    if where:
        kind = type(model.get_submodule(where)).__name__
        subject = f"module '{where}' ({kind})"
        alternative = f", or keep that module opaque with leaf_modules=[{kind}] (its channels are then frozen)"
    else:
        subject = f"the model's own forward ({type(model).__name__})"
        alternative = ""  # the tracer runs the root's forward itself: no leaf declaration avoids it
    return TraceError(f"cannot trace {subject} at {location}: {pattern.what} ({type(exc).__name__}: "
                      f"{first}). Fix: rewrite that line: {pattern.fix}{alternative}")


__all__ = ["PATTERNS", "Pattern", "pattern_of", "trace_error", "user_frame"]
