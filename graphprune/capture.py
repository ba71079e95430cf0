"""Capture a model as an fx graph: torch.fx symbolic tracing, or torch.export (non-strict) when asked.

``capture = "fx"`` (the default) is ``graphprune.trace``: a module-level graph whose standard layers
stay ``call_module`` leaves. ``"export"`` runs ``torch.export.export(model, args, strict=False)``: a graph
of ATen ops (``graphprune/ops/aten.py`` and the families declare them) whose parameters and buffers
are ``get_attr`` nodes under their original fully-qualified names (``layer1.0.conv1.weight``), so the
report's ``kept`` keeps its meaning. export runs the model's Python, so it captures what symbolic tracing
cannot: branches on input sizes, star-unpacked shapes. ``"auto"`` traces with fx and falls back to
export when fx fails; the returned record says which capture ran and why.

The exported module is rebuilt as a plain ``GraphModule`` with positional tensor inputs and the output
structure as code (``torch.export``'s pytree codegen and its input-guard submodule are dropped), so
the passes see the same kind of graph as from fx. Its sizes are those of the example inputs (no
dynamic dims are requested)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.utils import _pytree as pytree

from graphprune.errors import InputError, TraceError
from graphprune.trace import trace

CAPTURES = ("fx", "export", "auto")


def capture(model: nn.Module, inputs: tuple[Any, ...], mode: str, leaves: Iterable[type] = (),
            constants: dict[str, Any] | None = None) -> tuple[fx.GraphModule, dict[str, str]]:
    """``model`` as a GraphModule sharing its tensors, and a record ``{"capture": ..., "why": ...}``."""
    check_capture(mode)
    if mode == "export":
        return export_graph(model, inputs, constants), {"capture": "export", "why": "capture = 'export'"}
    try:
        traced = trace(model, tuple(leaves), concrete_args=constants or None, num_inputs=len(inputs))
    except TraceError as exc:
        if mode != "auto":
            raise
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return export_graph(model, inputs, constants), {"capture": "export", "why": f"fx tracing failed: {first}"}
    return traced, {"capture": "fx", "why": f"capture = '{mode}'"}


def check_capture(mode: Any) -> None:
    if mode not in CAPTURES:
        raise InputError(f"capture: expected one of {', '.join(repr(c) for c in CAPTURES)}, got {mode!r}")


def export_graph(model: nn.Module, inputs: tuple[Any, ...], constants: dict[str, Any] | None = None) -> fx.GraphModule:
    """``torch.export`` (non-strict) of ``model`` on ``inputs``, as a plain GraphModule."""
    if not isinstance(model, nn.Module):
        raise TraceError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not all(isinstance(x, torch.Tensor) for x in inputs):
        raise TraceError("capture = 'export' takes tensor example inputs only (containers are not supported yet)")
    try:
        exported = torch.export.export(model, tuple(inputs), kwargs=dict(constants or {}), strict=False)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise TraceError(f"torch.export could not capture {type(model).__name__}: {type(exc).__name__}: {first}") \
            from exc
    return _plain(exported.module())


def _plain(gm: fx.GraphModule) -> fx.GraphModule:
    """A copy of the unlifted exported module with fx's default codegen: positional inputs, the output
    rebuilt from the flat results by ``_out_spec`` and no ``_guards_fn`` call.
    In-place ATen ops (``relu_``, ``add_``) need nothing: torch.export already makes every later reader of
    the written tensor read the op's result, so the analyses, which treat each node as a new value, see
    the data flow as it is (``tests/capture/test_export_capture.py`` checks it)."""
    graph = gm.graph
    for node in [n for n in graph.nodes if n.op == "call_module" and str(n.target).startswith("_guards")]:
        graph.erase_node(node)
    output = next(n for n in graph.nodes if n.op == "output")
    flat = list(output.args[0])
    output.args = (_unflatten(flat, gm._out_spec),)
    graph._codegen = fx.graph.CodeGen()
    out = fx.GraphModule(gm, graph, class_name=type(gm).__name__)
    out.meta["capture"] = "export"
    return out


def _unflatten(flat: list[Any], spec: pytree.TreeSpec) -> Any:
    """The output structure over graph nodes: tuples, lists and dicts of leaves."""
    if spec.is_leaf():
        return flat.pop(0)
    children = [_unflatten(flat, child) for child in spec.children_specs]
    if spec.type in (tuple, list):
        return spec.type(children)
    if spec.type is dict:
        return dict(zip(spec.context, children))
    raise TraceError(f"capture = 'export' cannot rebuild an output of type {spec.type.__name__} yet")
