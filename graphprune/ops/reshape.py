"""Reshapes: view/reshape/flatten/unflatten/squeeze/unsqueeze and their module forms.

Index maps are exact: every output index gets the element of the input index it copies. Where a
reshape spreads one channel dim over several dims (into attention heads, into a channel-shuffle grid),
the elements that share an index in the innermost such dim are *tied* (kept or removed together) so
that every surviving tensor is still a full grid and the reshape stays valid with re-derived sizes:
the head_dim shrinks alike in every head. A reshape the analysis is told to split by heads
(``ElementTable.head_splits``, for ``structure = "heads"``) ties the other way: every element of one
index of the dim just outside the innermost (one head: its head_dim, and its q/k/v slot of a fused
projection) is one channel, so whole heads go and head_dim stays.
Literal sizes baked into the call are re-derived after removal (``rewrite_shape_args``); a size the graph
computes from run-time sizes (``8 * h * w``) is rescaled as an expression (``graphprune.symbolic``), so
it stays dynamic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from graphprune.channels.context import RuleContext
from graphprune.channels.elements import Ids
from graphprune.channels.layout import EMPTY, Layout
from graphprune.ops.registry import Liveness, Trait, declare, formula, methods, register, twin_of
from graphprune.shapes.registry import Call, Meta, TensorInfo, dim_index, ints, module_input, numel, spec
from graphprune.symbolic import emit, rescaled, size_expr


def match_blocks(a: Sequence[int], b: Sequence[int]) -> list[tuple[list[int], list[int]]]:
    """Split two shapes with equal numel into aligned blocks of dims with equal products."""
    blocks, i, j = [], 0, 0
    while i < len(a) or j < len(b):
        ins, outs, pa, pb = [], [], 1, 1
        if i < len(a):
            ins.append(i), (pa := pa * a[i])
            i += 1
        if j < len(b):
            outs.append(j), (pb := pb * b[j])
            j += 1
        while pa != pb:
            if pa < pb and i < len(a):
                ins.append(i)
                pa *= a[i]
                i += 1
            elif j < len(b):
                outs.append(j)
                pb *= b[j]
                j += 1
            else:
                raise ValueError(f"shapes {tuple(a)} and {tuple(b)} do not reshape into each other")
        blocks.append((ins, outs))
    return blocks


def reshape_layout(ctx: RuleContext, x: object) -> Layout:
    """Layout of ``x`` viewed with the output's shape (view/reshape/flatten/unflatten/squeeze/...)."""
    lay, info, out = ctx.layout(x), ctx.info(x), ctx.out
    if not isinstance(lay, Layout) or info is None or not isinstance(out, TensorInfo):
        return EMPTY
    dims: dict[int, Ids] = {}
    for ins, outs in match_blocks(info.shape, out.shape):
        carriers = [d for d in ins if lay.get(d) is not None]
        if not carriers:
            continue
        if len(carriers) > 1:  # e.g. (in, kh, kw) of a loose weight: the outermost stays the channel
            for d in carriers[1:]:
                ctx.freeze(lay.get(d), "reshape merges two channel dims")
            carriers = carriers[:1]
        dims.update(_block_layout(ctx, lay.get(carriers[0]), ins.index(carriers[0]),
                                  [info.shape[d] for d in ins], outs, [out.shape[d] for d in outs]))
    return Layout(dims)


def _block_layout(ctx: RuleContext, ids: Ids, pos: int, in_shape: list[int], outs: list[int],
                  out_shape: list[int]) -> dict[int, Ids]:
    """Layout of one reshape block whose only channel-carrying input dim is ``pos``."""
    view = [1] * len(in_shape)
    view[pos] = len(ids)
    grid = np.broadcast_to(ids.reshape(view), in_shape).reshape(out_shape)
    varying = [j for j in range(len(outs)) if out_shape[j] > 1 and not (grid == grid.take([0], axis=j)).all()]
    if not varying:  # one element over the whole block: keep it visible on the innermost real dim
        sized = [j for j in range(len(outs)) if out_shape[j] > 1]
        if not sized:  # a lone channel on size-1 dims: it cannot shrink, but stays tracked
            ctx.freeze(ids, "single channel reshaped")
            return {outs[-1]: ids.copy()} if outs else {}
        j = sized[-1]
        return {outs[j]: np.moveaxis(grid, j, -1).reshape(-1, out_shape[j])[0].copy()}
    carrier = _carrier(ctx, ids, varying)
    rows = np.moveaxis(grid, carrier, -1).reshape(-1, out_shape[carrier])
    if len(varying) > 1:  # one channel dim spread over several dims: tie across the others
        ctx.table.unify(rows[1:].ravel(), np.tile(rows[0], len(rows) - 1))
        if carrier != varying[-1]:
            ctx.table.heads.append(rows[0].copy())
    return {outs[carrier]: rows[0].copy()}


def _carrier(ctx: RuleContext, ids: Ids, varying: list[int]) -> int:
    """The output dim of a block that carries its channels: the innermost (head_dim), or, for a reshape
    split by heads, the dim right outside it (a single head has size 1 and is not split)."""
    if len(varying) == 1:
        return varying[0]
    ctx.table.spreads.setdefault(ctx.name, []).append(ids)
    if ctx.name in ctx.table.head_splits and varying[-2] == varying[-1] - 1:
        return varying[-2]
    return varying[-1]


def rewrite_shape_args(node, kept) -> None:
    """Replace literal sizes of the target shape by the pruned sizes (``-1`` and traced sizes stay)."""
    if node.op == "call_module":
        return _resize_unflatten_module(node, kept)
    new_shape = kept.new_shape(node)
    args = list(node.args)
    packed = len(args) == 2 and isinstance(args[1], (tuple, list))
    sizes = list(args[1]) if packed else args[1:]
    if str(node.target) == "unflatten" or twin_of(node.target) is torch.unflatten:  # method, function, ATen
        return _rewrite_unflatten(node, kept)
    if len(sizes) != len(new_shape):
        return
    for d, size in enumerate(sizes):
        if isinstance(size, int) and size != -1 and size != new_shape[d]:
            sizes[d] = new_shape[d]
        elif isinstance(size, fx.Node) and kept.new_value(size) != new_shape[d]:
            sizes[d] = resized(node, size, kept.new_value(size), new_shape[d])
    node.args = (args[0], type(args[1])(sizes)) if packed else (args[0], *sizes)


STATIC_SIZE = "graphprune_static_size"  # node meta: why a computed size argument became a literal


def resized(node: fx.Node, size: fx.Node, current: int, new: int) -> object:
    """The argument replacing ``size``, a computed size that would be ``current`` in the pruned graph but
    must be ``new``: the same arithmetic scaled by ``new / current`` (``graphprune.symbolic``), or the
    literal ``new`` when it cannot be read as size arithmetic; a literal replacing a run-time size is
    recorded on ``node`` (the report lists it under ``static_sizes``)."""
    expr = size_expr(size)
    scaled = rescaled(expr, current, new) if expr is not None and isinstance(current, int) else None
    if scaled is not None:
        with node.graph.inserting_before(node):
            return emit(node.graph, scaled)
    if expr is None or expr.expr.free_symbols:
        node.meta.setdefault(STATIC_SIZE, []).append(f"{size.name} = {expr.expr if expr else size.format_node()}")
    return new


def _unflattened(sizes: Sequence, dim: int, new_shape: list[int]) -> list:
    """``sizes`` that unflatten dim ``dim`` into the pruned ``new_shape`` (``-1`` and traced sizes stay)."""
    sizes = list(sizes)
    dim = dim if dim >= 0 else len(new_shape) - len(sizes) + 1 + dim
    for k, size in enumerate(sizes):
        if isinstance(size, int) and size != -1:
            sizes[k] = new_shape[dim + k]
    return sizes


def _rewrite_unflatten(node, kept) -> None:
    x, dim, sizes = node.args[0], node.args[1], node.args[2]
    node.args = (x, dim, tuple(_unflattened(sizes, dim, kept.new_shape(node))))


def _resize_unflatten_module(node, kept) -> None:
    """``nn.Unflatten`` bakes its sizes into ``unflattened_size``; the pass's own copy of the module
    gets the pruned ones (named-tensor dims, given as names, have no channels to follow)."""
    m = node.graph.owning_module.get_submodule(str(node.target))
    if isinstance(m.dim, int):
        m.unflattened_size = type(m.unflattened_size)(_unflattened(m.unflattened_size, m.dim, kept.new_shape(node)))


# Rearrangements canonicalize may compose (the element-wise family's ``contiguous`` is one too).
declare([torch.reshape, torch.flatten, torch.unflatten,
         *methods("view", "reshape", "flatten", "unflatten", "contiguous")], traits={Trait.REARRANGES})
RESHAPES_WITH_SIZES = [torch.reshape, *methods("view", "reshape", "unflatten"), torch.unflatten, nn.Unflatten]
RESHAPES = [torch.flatten, torch.squeeze, torch.unsqueeze, nn.Flatten,
            *methods("flatten", "squeeze", "unsqueeze", "view_as", "reshape_as", "squeeze_", "unsqueeze_")]


@register(RESHAPES_WITH_SIZES, rewrite=rewrite_shape_args, liveness=Liveness.MOVEMENT)
def reshape_sized(ctx: RuleContext) -> Layout:
    return reshape_layout(ctx, ctx.arg(0, "input"))


@register(RESHAPES, liveness=Liveness.MOVEMENT)
def reshape(ctx: RuleContext) -> Layout:
    return reshape_layout(ctx, ctx.arg(0, "input"))


# ---- shapes (``graphprune.shapes.registry``)

@formula([torch.flatten, *methods("flatten")])
def flatten_shape(call: Call) -> Meta | None:
    x = spec(call.args[0]) if call.args else None
    if x is None or not call.only("start_dim", "end_dim", max_args=3):
        return None
    if x.ndim == 0:
        return Meta((1,), x.dtype, x.device)
    start, end = dim_index(call.arg(1, "start_dim", 0), x.ndim), dim_index(call.arg(2, "end_dim", -1), x.ndim)
    if start is None or end is None or start > end:
        return None
    return Meta((*x.shape[:start], numel(x.shape[start:end + 1]), *x.shape[end + 1:]), x.dtype, x.device)


def _view_meta(x: Meta, sizes: tuple[int, ...] | None) -> Meta | None:
    if sizes is None or sum(1 for s in sizes if s == -1) > 1 or any(s < -1 for s in sizes):
        return None
    known = numel(tuple(s for s in sizes if s != -1))
    total = numel(x.shape)
    if -1 in sizes:
        if known == 0 or total % known:
            return None
        sizes = tuple(total // known if s == -1 else s for s in sizes)
    return Meta(sizes, x.dtype, x.device) if numel(sizes) == total else None


@formula(methods("view", "reshape"))
def view_shape(call: Call) -> Meta | None:
    x = spec(call.args[0]) if call.args else None
    if x is None or call.kwargs or len(call.args) < 2:
        return None
    return _view_meta(x, ints(call.args[1:]))


@formula([torch.reshape])
def reshape_shape(call: Call) -> Meta | None:
    x = spec(call.arg(0, "input"))
    shape = call.arg(1, "shape")
    if x is None or not isinstance(shape, (tuple, list, torch.Size)) or not call.only("input", "shape", max_args=2):
        return None
    return _view_meta(x, ints((shape,)))


@formula([nn.Flatten])
def flatten_module_shape(call: Call) -> Meta | None:
    m, x = call.module, module_input(call, floating=False)
    if x is None or x.ndim == 0:
        return None
    start, end = dim_index(m.start_dim, x.ndim), dim_index(m.end_dim, x.ndim)
    if start is None or end is None or start > end:
        return None
    return Meta((*x.shape[:start], numel(x.shape[start:end + 1]), *x.shape[end + 1:]), x.dtype, x.device)


@formula([torch.unsqueeze, *methods("unsqueeze")])
def unsqueeze_shape(call: Call) -> Meta | None:
    x = spec(call.args[0]) if call.args else None
    dim = call.arg(1, "dim")
    if x is None or not call.only("dim", max_args=2):
        return None
    d = dim_index(dim, x.ndim + 1)
    return None if d is None else Meta((*x.shape[:d], 1, *x.shape[d:]), x.dtype, x.device)
