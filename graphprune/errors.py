"""Error types. Every user-facing failure is one of these, with a message that names the location
(module path, plan key, argument) and what to do, so the CLI can print it as one line and exit non-zero."""

from __future__ import annotations


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
