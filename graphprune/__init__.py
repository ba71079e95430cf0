"""graphprune: a declarative graph-transformation compiler for structured pruning of PyTorch models."""

from graphprune.api import Result, compile
from graphprune.errors import GraphpruneError, InputError, PlanError, TraceError, UnknownModelError
from graphprune.report import Report

__all__ = ["GraphpruneError", "InputError", "PlanError", "Report", "Result", "TraceError",
           "UnknownModelError", "compile"]
__version__ = "0.1.0"
