"""Error types. Every user-facing failure is one of these, with a message that names the location
(module path, plan key, argument) and what to do, so the CLI can print it as one line and exit non-zero."""

from __future__ import annotations

import os
import sys
import traceback


class GraphpruneError(Exception):
    """Base class: a problem the user can act on (bad input, untraceable model, impossible plan)."""


class InputError(GraphpruneError, ValueError):
    """The model, the example inputs or an option is not what graphprune needs."""


class TraceError(GraphpruneError):
    """torch.fx could not trace the model; the message names the module and suggests a fix."""


class UnknownModelError(GraphpruneError, KeyError):
    """A model spec (``torchvision:NAME``, ``timm:NAME``, ``zoo:NAME``, ``pkg.mod:fn``, ``file.py:fn``)
    that does not resolve."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class PlanError(GraphpruneError, ValueError):
    """A malformed or unsatisfiable plan; the message starts with the key path."""


class OutputError(GraphpruneError):
    """An output file could not be written (disk full, permission, a name given twice); nothing is left
    behind. The message starts with the option that names the file."""


class UserCodeError(GraphpruneError):
    """The user's code raised: a model file that does not import, a factory that fails, a constructor
    that rejects its arguments. The message names the innermost line of the user's (or the model
    library's) code and the exception, so the user can act without a traceback; ``--debug`` shows it."""

    @classmethod
    def wrap(cls, what: str, exc: BaseException) -> UserCodeError:
        where = user_location(exc)
        detail = exc.msg if isinstance(exc, SyntaxError) else str(exc)  # the location is in ``where``
        text = (str(detail).strip().splitlines() or [""])[0][:300]
        return cls(f"{what}: {where + ': ' if where else ''}{type(exc).__name__}{': ' + text if text else ''}")


def _is_library(filename: str) -> bool:
    """Whether a frame's file is not the user's code: the standard library, torch itself and graphprune's
    own packages. A model library (torchvision, timm) counts as the model's code."""
    import sysconfig

    path = os.path.abspath(filename)
    paths = sysconfig.get_paths()
    site = tuple(os.path.join(paths[k], "") for k in ("purelib", "platlib"))
    if path.startswith(os.path.join(paths["stdlib"], "")) and not path.startswith(site):
        return True
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    own = [os.path.join(here, name, "") for name in ("graphprune", "models_zoo", "passes")]
    torch = sys.modules.get("torch")
    if torch is not None and getattr(torch, "__file__", None):
        own.append(os.path.join(os.path.dirname(torch.__file__), ""))
    return path.startswith(tuple(own))


def user_location(exc: BaseException) -> str:
    """``file:line`` of the innermost frame of ``exc`` in the user's code (for a SyntaxError, where the
    parser stopped); the innermost frame when none is; '' without a traceback."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{_short(exc.filename)}:{exc.lineno}"  # where the parser stopped, not a frame
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    user = [f for f in frames if not f.filename.startswith("<") and not _is_library(f.filename)]
    frame = (user or frames)[-1]
    return f"{_short(frame.filename)}:{frame.lineno}"


def _short(filename: str) -> str:
    """A path as the user knows it: relative under the working directory, from the package for an
    installed library (``torchvision/models/vgg.py``), else as it is."""
    import sysconfig

    path = os.path.abspath(filename)
    for base in (os.getcwd(), *{sysconfig.get_paths()[k] for k in ("purelib", "platlib")}):
        if path.startswith(os.path.join(base, "")):
            return os.path.relpath(path, base)
    return filename


class CheckpointError(GraphpruneError):
    """A checkpoint cannot be read, is not ours, or belongs to a different run configuration."""


class PlotError(GraphpruneError):
    """The plot could not be drawn (matplotlib missing, nothing to plot)."""


class ExportError(GraphpruneError):
    """The module could not be exported in the requested format."""


class StandaloneError(GraphpruneError):
    """The graph cannot be written as Python that runs without graphprune."""


class PipelineError(GraphpruneError):
    """A pass failed, or was scheduled before the facts it requires."""


class RemovalError(GraphpruneError):
    """Removal produced a graph that does not match the analysis (a bug in a rule: report it)."""
