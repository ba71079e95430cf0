"""graphprune: a declarative graph-transformation compiler for structured pruning of PyTorch models.

The public names are imported on first use, so that ``import graphprune.cli`` (the command line) is
cheap: torch is imported inside the CLI's error handling, where a Ctrl-C during start-up is caught."""

from __future__ import annotations

import importlib
from typing import Any

from graphprune.errors import GraphpruneError, InputError, PlanError, TraceError, UnknownModelError

__all__ = ["GraphpruneError", "InputError", "PlanError", "Report", "Result", "TraceError",
           "UnknownModelError", "apply", "compile", "load"]
__version__ = "0.1.0"

_LAZY = {"Result": "graphprune.api", "compile": "graphprune.api", "Report": "graphprune.report",
         "apply": "graphprune.replay", "load": "graphprune.loading"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    try:
        return importlib.import_module(f"{__name__}.{name}")  # a submodule used as an attribute
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
