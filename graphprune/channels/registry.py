"""The channel rule table: op -> how channels flow through it.

Keys are what an fx node calls: a function object (``torch.cat``, ``operator.add``), a method name
(``Method("view")``), or a module class (``nn.Conv2d``). Each rule propagates layouts from inputs to
the output and records couplings in the element table; an optional ``rewrite`` fixes the node's baked
constants (reshape sizes, split sizes, slice bounds) when channels are removed. A node whose key has
no rule is not guessed at: the analysis freezes every channel it touches and reports the op by name.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch.fx as fx
from torch import nn

Key = Any  # function object | Method | module class


@dataclass(frozen=True)
class Method:
    """Key for ``call_method`` nodes."""

    name: str


class Liveness(enum.Enum):
    """How an op treats an all-zero channel and which input channels it reads, for unused-path removal
    (``graphprune.liveness.ops`` turns a kind into exact zero/read behaviour). Declared with the rule,
    so renaming a rule function cannot change what liveness concludes."""

    GENERIC = "generic"  # reads every input channel, never known to output zero
    SHAPE_QUERY = "shape-query"  # reads no values
    LINEAR = "linear"  # conv / linear: a dead output channel, an unread input column
    NORM_MODULE = "norm-module"  # per-channel norm layer (batch/instance/group norm)
    NORM_FUNCTIONAL = "norm-functional"  # F.batch_norm / F.instance_norm
    MOVEMENT = "movement"  # pure data movement: each output value is an input value
    PAD = "pad"  # movement plus padding values
    PER_CHANNEL = "per-channel"  # channel c of the result from channel c only, zero kept (pooling, PReLU, GLU)
    ELEMENTWISE = "elementwise"  # per channel; whether zero is kept depends on the function
    REDUCTION = "reduction"  # over some dims; zero kept by sums and means
    CONTRACTION = "contraction"  # matmul / einsum: sums of products
    ATTENTION = "attention"  # softmax(q k^T) v


@dataclass(frozen=True)
class Rule:
    name: str
    propagate: Callable[..., Any]
    rewrite: Callable[..., None] | None = None
    liveness: Liveness = Liveness.GENERIC


RULES: dict[Key, Rule] = {}


def register(keys: Iterable[Key], rewrite: Callable[..., None] | None = None, *,
             liveness: Liveness = Liveness.GENERIC) -> Callable:
    """Decorator: register ``fn`` as the propagate function for every key, with its liveness kind."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        for key in keys:
            RULES[key] = Rule(fn.__name__, fn, rewrite, liveness)
        return fn

    return deco


def methods(*names: str) -> list[Method]:
    return [Method(n) for n in names]


def node_key(node: fx.Node, root: nn.Module, modules: Mapping[str, nn.Module] | None = None) -> Key:
    """``modules``: optionally ``dict(root.named_modules(remove_duplicate=False))``, to look up
    ``call_module`` targets without walking the path each time."""
    if node.op == "call_function":
        return node.target
    if node.op == "call_method":
        return Method(str(node.target))
    if node.op == "call_module":
        target = str(node.target)
        return type(modules[target] if modules is not None and target in modules else root.get_submodule(target))
    return None


# Registrations for an optional package, run once that package has been imported by someone: a model
# built from its layers implies the import, and not importing it ourselves keeps graphprune light.
_PENDING: dict[str, Callable[[], None]] = {}


def register_when_imported(package: str, registration: Callable[[], None]) -> None:
    _PENDING[package] = registration
    _run_pending()


def _run_pending() -> None:
    for package in [p for p in _PENDING if p in sys.modules]:
        _PENDING.pop(package)()


def lookup(key: Key) -> Rule | None:
    """Exact match first; a module subclass inherits its base's rule only if it keeps the base's
    forward (a subclass that rewrites forward may mix channels differently, so it must be registered)."""
    if _PENDING:
        _run_pending()
    rule = RULES.get(key)
    if rule is not None or not isinstance(key, type):
        return rule
    for base in key.__mro__[1:]:
        if base in RULES and getattr(key, "forward", None) is getattr(base, "forward", None):
            return RULES[base]
    return None


def describe(key: Key) -> str:
    """Human name of an op key for reports: ``torch.roll``, ``Tensor.unfold``, ``nn.LSTM``."""
    if isinstance(key, Method):
        return f"Tensor.{key.name}"
    if isinstance(key, type):
        return f"{key.__module__}.{key.__qualname__}"
    module = getattr(key, "__module__", None) or ""
    name = getattr(key, "__qualname__", None) or getattr(key, "__name__", repr(key))
    return f"{module}.{name}" if module else name
