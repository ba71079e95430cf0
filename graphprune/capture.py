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
the passes see the same kind of graph as from fx.

Sizes: with ``dynamic = "auto"`` (the default) the batch and the sequence dims are requested dynamic
(``graphprune.capture_sizes`` says which and why; ``"all"``: every dim, ``"static"``: none), so the graph
reads them at run time (``aten.sym_size.int``) and the pruned graph runs at any batch and sequence length
the dense one does (``graphprune.symbolic`` keeps the size arguments removal rewrites symbolic). The
record lists each dynamic dim with its range. A model that export cannot capture with dynamic dims is
captured at the example sizes, and the record says why. (fx graphs compute sizes at run time anyway.)"""

from __future__ import annotations

import collections
import inspect
from collections.abc import Iterable
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.utils import _pytree as pytree

from graphprune.capture_sizes import auto_dims, dynamic_sizes
from graphprune.errors import InputError, TraceError
from graphprune.ops.aten import lower
from graphprune.trace import trace

CAPTURES = ("fx", "export", "auto")
DYNAMIC = ("auto", "all", "static")
CALL_CHANGES = {"use_cache": "a KV cache output would freeze every attention head"}  # why each is set


def capture(model: nn.Module, inputs: tuple[Any, ...], mode: str, leaves: Iterable[type] = (),
            constants: dict[str, Any] | None = None, dynamic: str = "auto") -> tuple[fx.GraphModule, dict[str, Any]]:
    """``model`` as a GraphModule sharing its tensors, and a record ``{"capture": ..., "why": ...}``."""
    check_capture(mode)
    check_dynamic(dynamic)
    if mode == "export":
        gm, changed, sizes = export_graph(model, inputs, constants, dynamic)
        return gm, _record("capture = 'export'", changed, sizes)
    try:
        traced = trace(model, tuple(leaves), concrete_args=constants or None, num_inputs=len(inputs))
    except TraceError as exc:
        if mode != "auto":
            raise
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        try:
            gm, changed, sizes = export_graph(model, inputs, constants, dynamic)
        except TraceError as export_exc:  # the fx error names the user's line and a fix: it leads
            raise TraceError(f"{exc} (capture = 'auto' tried torch.export too: {export_exc})") from exc
        return gm, _record(f"fx tracing failed: {first}", changed, sizes)
    lower(traced.graph)  # torch.addmm and the like, as the export capture lowers its ATen forms
    traced.recompile()
    return traced, {"capture": "fx", "why": f"capture = '{mode}'"}


def _record(why: str, changed: dict[str, Any], sizes: dict[str, Any]) -> dict[str, Any]:
    """What the report says about the capture; ``constants``: the forward arguments the capture set, which
    every later call of the dense model (masked equivalence, ``apply``) passes too; ``sizes``: the input
    dims the graph keeps dynamic (``dynamic_dims``)."""
    notes = [f"{k}={v!r} ({CALL_CHANGES[k]})" for k, v in changed.items()]
    record: dict[str, Any] = {"capture": "export", "why": "; ".join([why, *notes]), **sizes}
    return {**record, "constants": dict(changed)} if changed else record


def check_capture(mode: Any) -> None:
    if mode not in CAPTURES:
        raise InputError(f"capture: expected one of {', '.join(repr(c) for c in CAPTURES)}, got {mode!r}")


def check_dynamic(dynamic: Any) -> None:
    if dynamic not in DYNAMIC:
        raise InputError(f"dynamic: expected one of {', '.join(repr(c) for c in DYNAMIC)}, got {dynamic!r}")


def export_graph(model: nn.Module, inputs: tuple[Any, ...], constants: dict[str, Any] | None = None,
                 dynamic: str = "static") -> tuple[fx.GraphModule, dict[str, Any], dict[str, Any]]:
    """``torch.export`` (non-strict) of ``model`` on ``inputs``, as a plain GraphModule, what the capture
    changed about the call (said in the report) and the sizes record (``dynamic_sizes``)."""
    if not isinstance(model, nn.Module):
        raise TraceError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not all(isinstance(x, torch.Tensor) for x in inputs):
        raise TraceError("capture = 'export' takes tensor example inputs only (containers are not supported yet)")
    args, kwargs, changed = export_call(model, tuple(inputs), dict(constants or {}))
    exported, static_why = None, None
    if dynamic != "static":
        try:
            exported = torch.export.export(model, args, kwargs=kwargs, strict=False,
                                           dynamic_shapes=auto_dims(args, kwargs, dynamic))
        except Exception as exc:
            static_why = _first(exc)
    if exported is None:
        try:
            exported = torch.export.export(model, args, kwargs=kwargs, strict=False)
        except Exception as exc:
            raise TraceError(f"torch.export could not capture {type(model).__name__}: {_first(exc)}") from exc
    sizes = dynamic_sizes(exported, static_why if dynamic != "static" else "dynamic = 'static'")
    return _plain(exported.module(), pytree.tree_leaves((args, kwargs))), changed, sizes


def _first(exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"


def export_call(model: nn.Module, inputs: tuple[Any, ...],
                constants: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
    """The ``(args, kwargs)`` torch.export is called with, so the graph's placeholders are ``inputs`` in order.

    Why keywords: a traced input may follow a constant in the signature (T5's ``decoder_input_ids`` after
    ``attention_mask=None``); passed by position it would bind to the constant's slot. Each input is
    therefore passed by its parameter's name, in signature order (the order torch.export gives the
    placeholders), unless ``forward`` takes ``*args``.

    Why ``use_cache=False``: a forward that returns a KV cache (Hugging Face's ``use_cache``) makes every
    key and value an output, and an output's shape is never changed, which would freeze every attention
    head. The graph therefore computes the model without its cache unless the caller asked for one;
    the module form (``graphprune.apply``) keeps the cache working."""
    changed: dict[str, Any] = {}
    params = list(inspect.signature(model.forward).parameters.values())
    if "use_cache" in (p.name for p in params) and constants.get("use_cache") is None:
        changed["use_cache"] = False
        constants = {**constants, **changed}
    if any(p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY) for p in params):
        return inputs, constants, changed
    names = [p.name for p in params if p.kind != p.VAR_KEYWORD and p.name not in constants]
    if len(names) < len(inputs):
        return inputs, constants, changed
    kwargs = dict(zip(names, inputs))
    order = {p.name: i for i, p in enumerate(params)}
    merged = {**kwargs, **constants}
    return (), dict(sorted(merged.items(), key=lambda kv: order.get(kv[0], len(order)))), changed


def _plain(gm: fx.GraphModule, leaves: list[Any]) -> fx.GraphModule:
    """A copy of the unlifted exported module with fx's default codegen: positional inputs, the output
    rebuilt from the flat results by ``_out_spec`` and no ``_guards_fn`` call.
    In-place ATen ops (``relu_``, ``add_``) need nothing: torch.export already makes every later reader of
    the written tensor read the op's result, so the analyses, which treat each node as a new value, see
    the data flow as it is (``tests/capture/test_export_capture.py`` checks it)."""
    graph = gm.graph
    for node in [n for n in graph.nodes if n.op == "call_module" and str(n.target).startswith("_guards")]:
        graph.erase_node(node)
    _inline_constant_leaves(graph, leaves)
    _inline_wrapped_regions(gm)
    lower(graph)
    output = next(n for n in graph.nodes if n.op == "output")
    flat = list(output.args[0])
    with graph.inserting_before(output):
        output.args = (_unflatten(graph, flat, gm._out_spec),)
    graph._codegen = fx.graph.CodeGen()
    out = fx.GraphModule(gm, graph, class_name=type(gm).__name__)
    out.meta["capture"] = "export"
    return out


WRAPPERS = ("wrap_with_set_grad_enabled", "wrap_with_autocast")  # higher-order ops over a region


def _inline_wrapped_regions(gm: fx.GraphModule) -> None:
    """A ``with torch.no_grad():`` (or autocast) block inside ``forward`` is exported as a higher-order op
    calling a subgraph; its ops are the model's like any other (a rotary table, a mask), so the subgraph is
    inlined and the analysis sees them. Grad mode does not change what inference computes."""
    regions = [n for n in gm.graph.nodes if n.op == "call_function" and getattr(n.target, "__name__", "") in WRAPPERS]
    for node in regions:
        _inline_region(gm, node)


def _inline_region(gm: fx.GraphModule, node: fx.Node) -> None:
    graph = gm.graph
    at = next(i for i, a in enumerate(node.args) if isinstance(a, fx.Node) and a.op == "get_attr")
    holder = node.args[at]
    body: fx.GraphModule = getattr(gm, holder.target)
    env = dict(zip([n for n in body.graph.nodes if n.op == "placeholder"], node.args[at + 1:]))
    results: Any = ()
    with graph.inserting_before(node):
        for inner in body.graph.nodes:
            if inner.op == "output":
                results = fx.node.map_arg(inner.args[0], env.__getitem__)
            elif inner.op == "get_attr":  # a constant of the subgraph: moved onto the root
                name = f"_inlined_{node.name}_{inner.target}".replace(".", "_")
                setattr(gm, name, getattr(body, inner.target))
                env[inner] = graph.get_attr(name)
            elif inner.op != "placeholder":
                env[inner] = graph.node_copy(inner, env.__getitem__)
    for user in list(node.users):  # getitem(region, i) -> the region's i-th result
        user.replace_all_uses_with(results[user.args[1]])
        graph.erase_node(user)
    graph.erase_node(node)
    if not holder.users:
        graph.erase_node(holder)
        delattr(gm, holder.target)


def _inline_constant_leaves(graph: fx.Graph, leaves: list[Any]) -> None:
    """Each input leaf that is not a tensor (``use_cache=False``, an int) is a placeholder of the exported
    graph; it becomes the constant it was, so the module takes exactly the tensor inputs, in order."""
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(leaves):
        raise TraceError(f"capture = 'export': {len(placeholders)} graph inputs for {len(leaves)} input leaves")
    for node, leaf in zip(placeholders, leaves):
        if isinstance(leaf, torch.Tensor):
            continue
        for user in list(node.users):
            user.args = fx.node.map_arg(user.args, lambda n, node=node, leaf=leaf: leaf if n is node else n)
            user.kwargs = fx.node.map_arg(user.kwargs, lambda n, node=node, leaf=leaf: leaf if n is node else n)
        graph.erase_node(node)


def _unflatten(graph: fx.Graph, flat: list[Any], spec: pytree.TreeSpec) -> Any:
    """The output structure over graph nodes: tuples, lists and dicts of leaves; a dict subclass (a
    ``ModelOutput``, an ``OrderedDict``) is built by a call to its class, as the fx capture does
    (``graphprune.trace``), so both captures return the type the model returns."""
    if spec.is_leaf():
        return flat.pop(0)
    children = [_unflatten(graph, flat, child) for child in spec.children()]
    if spec.type in (tuple, list):
        return spec.type(children)
    if spec.type is collections.namedtuple:  # pytree's namedtuple node: the class is its context
        return graph.call_function(spec.context, tuple(children))
    if spec.type is dict:
        return dict(zip(spec.context, children))
    if spec.type is type(None):
        return None
    if issubclass(spec.type, dict) and all(isinstance(k, str) and k.isidentifier() for k in spec.context):
        return graph.call_function(spec.type, (), dict(zip(spec.context, children)))
    raise TraceError(f"capture = 'export' cannot rebuild an output of type {spec.type.__name__} yet")
