"""The channel analysis: walk the traced graph once, apply each node's rule, collect couplings.

Preconditions: ``values`` from ``graphprune.values.propagate`` for the same GraphModule.
Effects: none on the graph (an analysis never mutates); returns a ``ChannelAnalysis``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch.fx as fx

import graphprune.ops  # noqa: F401  (fills the rule table)
from graphprune.channels.context import RuleContext, empty_like
from graphprune.channels.elements import ElementTable
from graphprune.channels.layout import Layout, iter_layouts
from graphprune.channels.outputs import is_container_class, output_leaves
from graphprune.channels.probe import probe_movement
from graphprune.interface import tensor_aliases
from graphprune.ops.registry import describe, lookup, node_key
from graphprune.plan.output_modes import mode_of
from graphprune.shapes.registry import TensorInfo


@dataclass(frozen=True)
class UnknownOp:
    node: str
    op: str


@dataclass
class ChannelAnalysis:
    table: ElementTable
    layouts: dict[str, Any]  # node name -> Layout | tuple of Layouts | None
    unknown: list[UnknownOp]
    # Opaque functions the probe found pure movement (``graphprune.channels.probe``): every output value
    # an input value of the same channel, which the liveness walk reads as a copy.
    movement: frozenset[str] = frozenset()


def _get_attr_layout(table: ElementTable, node: fx.Node, value: Any) -> Any:
    """A loose parameter/buffer: every dim of size > 1 gets the parameter's own elements."""
    if not isinstance(value, TensorInfo):
        return None
    if not value.dtype.is_floating_point:  # index tables and masks are not channels
        return Layout({})
    fqn = str(node.target)
    return Layout({d: table.param(fqn, d, s) for d, s in enumerate(value.shape) if s > 1})


def analyze(gm: fx.GraphModule, values: dict[str, Any], whole_group_convs: frozenset[str] = frozenset(),
            head_splits: frozenset[str] = frozenset(), outputs: Any = "keep") -> ChannelAnalysis:
    """``head_splits``: reshape nodes to split by whole heads (``graphprune.channels.heads``); ``outputs``:
    the ``[allocate] outputs`` option (``graphprune.channels.outputs``)."""
    table = ElementTable(whole_group_convs=whole_group_convs, aliases=tensor_aliases(gm), head_splits=head_splits)
    layouts: dict[str, Any] = {}
    unknown: list[UnknownOp] = []
    modules = dict(gm.named_modules(remove_duplicate=False))
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            layouts[node.name] = empty_like(values.get(node.name))
        elif node.op == "get_attr":
            layouts[node.name] = _get_attr_layout(table, node, values.get(node.name))
        elif node.op == "output":
            _freeze_outputs(gm, node, table, layouts, values, outputs)
        else:
            layouts[node.name] = _apply_rule(gm, node, table, layouts, values, unknown, modules)
    movement = frozenset(n.name for n in gm.graph.nodes if n.op == "call_function" and isinstance(
        layouts.get(n.name), Layout) and layouts[n.name].dims and lookup(node_key(n, gm, modules)) is None
        and not is_container_class(n.target))
    return ChannelAnalysis(table, layouts, unknown, movement)


def _freeze_outputs(gm: fx.GraphModule, output: fx.Node, table: ElementTable, layouts: dict[str, Any],
                    values: dict[str, Any], outputs: Any) -> None:
    """Freeze every channel of an output leaf, except a zero-filled leaf's (a tensor, so removal can
    scatter its kept channels back into zeros of its width: ``graphprune.zero_fill``)."""
    for leaf in output_leaves(gm.graph):
        lay = layouts.get(leaf.node.name)
        tensor = isinstance(lay, Layout) and isinstance(values.get(leaf.node.name), TensorInfo)
        if tensor and mode_of(leaf.name, outputs) == "zero-fill":
            continue
        for one in iter_layouts(lay):
            for ids in one.all_ids():
                table.freeze(ids, "reaches the model output", output.name)


def _apply_rule(gm: fx.GraphModule, node: fx.Node, table: ElementTable, layouts: dict[str, Any],
                values: dict[str, Any], unknown: list[UnknownOp], modules: dict[str, Any]) -> Any:
    """The node's rule, else a movement probe of an opaque function, else freeze and report."""
    ctx = RuleContext(node, table, gm, layouts, values, modules)
    key = node_key(node, gm, modules)
    rule = lookup(key)
    if rule is not None:
        result = rule.propagate(ctx)
    elif node.op == "call_function" and is_container_class(node.target):
        result = structure_layout(ctx)
    else:
        result = probe_movement(ctx) if node.op == "call_function" else None
        if result is None:
            op = describe(key)
            if any(lay.dims for lay in ctx.input_layouts()):
                unknown.append(UnknownOp(node.name, op))
            ctx.freeze_inputs(f"no channel rule for {op}")
            return empty_like(values.get(node.name))
    for lay in iter_layouts(result):
        for ids in lay.all_ids():
            table.anchor(ids)
    return result


def structure_layout(ctx: RuleContext) -> Any:
    """The packed arguments' layouts, as a dict by field/key (or a tuple by position): channels pass
    through unchanged, and whatever reads the structure (the output) sees every leaf."""
    if ctx.node.kwargs:
        return ctx.layout(dict(ctx.node.kwargs))
    if len(ctx.node.args) == 1 and isinstance(ctx.node.args[0], (list, tuple)) and issubclass(ctx.node.target, dict):
        return {k: ctx.layout(v) for k, v in ctx.node.args[0]}
    return ctx.layout(tuple(ctx.node.args))


def collapsed_within_group_convs(analysis: ChannelAnalysis, labels: np.ndarray) -> set[str]:
    """Grouped convs pruned within groups that end up coarser than whole groups would be.

    Narrowing every group alike ties output position j across groups, which on its own leaves one
    channel per position. Something else may also tie runs of contiguous channels (a GroupNorm with
    another group count, a channel split); the two together can merge positions into fewer channels
    than the conv has groups, and then removing whole groups is the finer choice (measured on the zoo's
    gn_net: 2 channels within groups, 4 by whole groups)."""
    coarse = set()
    for name, (ids, groups) in analysis.table.within_group_convs.items():
        distinct = np.unique(labels[ids]).size
        if distinct < min(groups, len(ids) // groups):
            coarse.add(name)
    return coarse


def analyze_until_stable(gm: fx.GraphModule, values: dict[str, Any],
                         head_splits: frozenset[str] = frozenset(), outputs: Any = "keep") -> ChannelAnalysis:
    """``analyze``, re-run with whole-group pruning for every grouped conv that within-group pruning
    left too coarse (the set only grows, so this ends after at most one round per grouped conv)."""
    whole: frozenset[str] = frozenset()
    while True:
        analysis = analyze(gm, values, whole, head_splits, outputs)
        if not analysis.table.within_group_convs:
            return analysis
        collapsed = collapsed_within_group_convs(analysis, analysis.table.resolve())
        if not collapsed:
            return analysis
        whole = whole | collapsed


__all__ = ["ChannelAnalysis", "UnknownOp", "analyze", "analyze_until_stable"]
