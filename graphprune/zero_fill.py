"""Removal through an output leaf with ``[allocate] outputs = "zero-fill"``: the pruned graph computes the
narrow tensor, and at the output scatters it back into zeros of the leaf's original width, so every
output leaf keeps its shape and a removed channel reads zero there.

The scatter is plain data movement that every exporter knows: ``constant_pad_nd`` appends one zero
along the channel dim, then ``index_select`` with a constant index (a buffer) puts each kept channel at
its original position and the appended zero at each removed one. Both ops have channel rules, so a
later round analyses the filled graph like any other (the appended zero is frozen padding).

Exactness is proved, never assumed: masked equivalence compares the leaf with the dense model whose
removed parameter slices are zeroed, and that model reads zero at a removed output channel only where
its producers make it so (a LayerNorm's zeroed affine does, a ``sigmoid`` or a constant added does not).
The liveness zero walk (``graphprune.liveness``), reading the graph's tensors with the cut slices zeroed
(``graphprune.liveness.zeroed``), decides it, as for the statistics
rewrite; a leaf whose removed channels are not proved zero is filled all the same and reported inexact
with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.fx as fx

from graphprune.channels.kept import KeptView
from graphprune.channels.layout import Layout
from graphprune.channels.outputs import OutputLeaf, output_leaves
from graphprune.liveness.analysis import zero_labels
from graphprune.liveness.zeroed import Zeroed
from graphprune.plan.output_modes import mode_of
from graphprune.state import CompileState

UNPROVED = ("output '{leaf}' zero-filled at channels the masked dense model does not provably zero "
            "(they read zero in the pruned model)")


def _filled(leaves: list[OutputLeaf], layouts: Mapping[str, Any], keep_element: np.ndarray,
            outputs: Any) -> list[tuple[OutputLeaf, dict[int, np.ndarray]]]:
    """Zero-filled leaves that lose channels, with their keep mask per channel dim that loses some."""
    found = []
    for leaf in leaves:
        lay = layouts.get(leaf.node.name)
        if mode_of(leaf.name, outputs) != "zero-fill" or not isinstance(lay, Layout):
            continue
        masks = {d: keep_element[ids] for d, ids in sorted(lay.dims.items()) if not keep_element[ids].all()}
        if masks:
            found.append((leaf, masks))
    return found


def unproved(state: CompileState, keep_element: np.ndarray, cuts: dict) -> tuple[tuple[str, str, int], ...]:
    """(reason, node, indices removed) for each zero-filled leaf whose removed channels the masked dense
    model is not proved to zero (``cuts``: this round's fqn -> dim -> kept indices)."""
    if state.options.outputs == "keep":
        return ()
    filled = _filled(output_leaves(state.gm.graph), state.analysis.layouts, keep_element, state.options.outputs)
    if not filled:
        return ()
    labels, layouts = state.channels.labels, state.analysis.layouts
    removed = {leaf.name: {int(c) for d, keep in masks.items() for c in labels[layouts[leaf.node.name].dims[d][~keep]]}
               for leaf, masks in filled}
    zero = zero_labels(state, set().union(*removed.values()), Zeroed(state.gm, cuts))
    return tuple((UNPROVED.format(leaf=leaf.name), leaf.node.name, int(sum((~k).sum() for k in masks.values())))
                 for leaf, masks in filled if not removed[leaf.name] <= zero.get(leaf.node.name, set()))


def fill_outputs(gm: fx.GraphModule, view: KeptView, outputs: Any) -> list[OutputLeaf]:
    """Scatter every zero-filled leaf that lost channels back to its original width (on ``gm``, a
    writable copy whose nodes were already rewritten); returns the leaves filled."""
    if outputs == "keep":
        return []
    done: dict[tuple[str, str], fx.Node] = {}
    filled = []
    for leaf, masks in _filled(output_leaves(gm.graph), view.layouts, view.keep_element, outputs):
        key = (leaf.holder.name, leaf.node.name)
        if key not in done:
            ndim, value = view.values[leaf.node.name].ndim, leaf.node
            with gm.graph.inserting_before(leaf.holder):
                for dim, keep in masks.items():
                    value = _scatter(gm, value, dim, keep, ndim)
            leaf.holder.replace_input_with(leaf.node, value)
            done[key] = value
        filled.append(leaf)
    return filled


def _scatter(gm: fx.GraphModule, value: fx.Node, dim: int, keep: np.ndarray, ndim: int) -> fx.Node:
    """``value`` (the kept channels along ``dim``) at their original positions, zeros elsewhere."""
    index = np.full(len(keep), int(keep.sum()), dtype=np.int64)  # removed -> the appended zero
    index[keep] = np.arange(int(keep.sum()))
    name = _free_name(gm, f"_zero_fill_{value.name}_{dim}")
    gm.register_buffer(name, torch.from_numpy(index), persistent=False)  # ours: the state_dict keeps the user's keys
    graph = gm.graph
    padded = graph.call_function(torch.constant_pad_nd, (value, [0, 0] * (ndim - 1 - dim) + [0, 1], 0.0))
    return graph.call_function(torch.index_select, (padded, dim, graph.get_attr(name)))


def _free_name(gm: fx.GraphModule, base: str) -> str:
    name, k = base, 1
    while hasattr(gm, name):
        name, k = f"{base}_{k}", k + 1
    return name


def record(artifacts: dict, filled: list[OutputLeaf]) -> dict:
    """``artifacts["outputs"]["zero_filled"]``: the output leaves zero-filled, over all rounds (the module
    form refuses them: ``graphprune.as_module.check_representable``)."""
    if not filled:
        return artifacts
    before = artifacts.get("outputs", {}).get("zero_filled", [])
    return {**artifacts, "outputs": {"zero_filled": sorted({*before, *(leaf.name for leaf in filled)})}}
