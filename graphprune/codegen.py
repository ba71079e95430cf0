"""Generate a GraphModule's Python once per compile, not once per graph edit.

Why: ``GraphModule.recompile`` prints the graph and byte-compiles the source, ~40 ms on a model with
a thousand nodes. fx does it when the traced module is built and again after every pass that edits
the graph, although a compile only needs the code of its final graph (and of any graph a pass runs
in between). So the traced module generates its code on first use (torch.fx's own lazy GraphModule,
which torch.compile uses the same way), and ``materialize`` turns the result back into a plain
GraphModule with its code generated, once, before it is handed to the user.

``recompile_if_changed`` serves modules that already have code: comparing the printed source plus the
objects its names bind is exact (identical source over identical globals is the identical function),
and printing is a third of the cost of recompiling.
"""

from __future__ import annotations

from typing import Any

import torch.fx as fx
from torch import nn

try:  # private to torch.fx (since torch 2.3); without it modules are built eagerly
    from torch.fx._lazy_graph_module import _LazyGraphModule
except ImportError:  # pragma: no cover - depends on the torch build
    _LazyGraphModule = None


def deferred_graph_module(root: nn.Module | dict[str, Any], graph: fx.Graph, class_name: str) -> fx.GraphModule:
    """``fx.GraphModule(root, graph, class_name)`` whose code is generated when first needed."""
    cls = _LazyGraphModule if _LazyGraphModule is not None else fx.GraphModule
    return cls(root, graph, class_name)


def materialize(gm: fx.GraphModule) -> fx.GraphModule:
    """Make ``gm`` (in place) a plain GraphModule whose ``forward`` is generated from its graph now."""
    if _LazyGraphModule is not None and isinstance(gm, _LazyGraphModule):
        plain = type("GraphModuleImpl", (fx.GraphModule,), {})  # what GraphModule.__new__ makes
        plain.__qualname__ = "GraphModuleImpl"
        plain.__module__ = fx.GraphModule.__module__
        gm.__class__ = plain
        gm.recompile()
    return gm


def recompile_if_changed(gm: fx.GraphModule) -> bool:
    """``gm.recompile()`` unless the graph's code and globals equal what ``gm`` already runs.
    Returns whether it recompiled."""
    forward = type(gm).__dict__.get("forward")
    current = getattr(forward, "__globals__", None)
    if current is not None and getattr(gm, "_code", None) is not None:
        fresh = gm.graph.python_code(root_module="self")
        if fresh.src == gm._code and all(current.get(k, _MISSING) is v for k, v in fresh.globals.items()):
            return False
    gm.recompile()
    return True


_MISSING = object()
