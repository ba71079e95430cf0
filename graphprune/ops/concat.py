"""Concatenation and splitting: cat/stack join tensors side by side, split/chunk/tensor_split/unbind
cut one apart. The joined (or cut) dim's elements are laid out exactly (concat offsets, piece slices);
other dims behave element-wise. Split sizes along a pruned dim are re-derived after removal.
"""

from __future__ import annotations

import numpy as np
import torch

from graphprune.channels.context import RuleContext
from graphprune.channels.layout import Layout
from graphprune.ops.registry import Liveness, Method, formula, methods, register
from graphprune.shapes.registry import Call, Meta, dim_index, ints, spec


def _cat_dim(ctx: RuleContext) -> int:
    return ctx.value(ctx.arg(1, "dim", 0)) % ctx.out.ndim


@register([torch.cat, torch.concat, torch.concatenate], liveness=Liveness.MOVEMENT)
def cat(ctx: RuleContext) -> Layout:
    """Concatenated dim: the inputs' elements side by side (fresh frozen elements where an input carries
    no tracked channels); other dims behave element-wise."""
    tensors, dim = list(ctx.arg(0, "tensors")), _cat_dim(ctx)
    infos = [ctx.info(t) for t in tensors]
    parts, any_tracked = [], False
    for t in tensors:
        ids = ctx.layout(t).get(dim)
        any_tracked |= ids is not None
        parts.append(ids)
    dims = dict(_aligned(ctx, tensors, skip=dim).dims)
    if any_tracked:
        filled = []
        for ids, info in zip(parts, infos):
            if ids is None:
                ids = ctx.table.new(info.shape[dim])
                ctx.freeze(ids, "concatenated with a tensor whose channels are not tracked")
            filled.append(ids)
        dims[dim] = np.concatenate(filled)
    return Layout(dims)


def _aligned(ctx: RuleContext, tensors: list, skip: int | None) -> Layout:
    """Element-wise coupling over all dims except ``skip`` for same-rank tensors."""
    dims = {}
    for d in range(ctx.out.ndim):
        if d != skip:
            ids = ctx.couple_all([ctx.layout(t).get(d) for t in tensors],
                                 "concatenated with a tensor whose channels are not tracked")
            if ids is not None:
                dims[d] = ids
    return Layout(dims)


@register([torch.stack], liveness=Liveness.MOVEMENT)
def stack(ctx: RuleContext) -> Layout:
    tensors = list(ctx.arg(0, "tensors"))
    dim = ctx.value(ctx.arg(1, "dim", 0)) % ctx.out.ndim
    dims = {}
    for d in range(ctx.out.ndim - 1):
        ids = ctx.couple_all([ctx.layout(t).get(d) for t in tensors],
                             "stacked with a tensor whose channels are not tracked")
        if ids is not None:
            dims[d if d < dim else d + 1] = ids
    return Layout(dims)


def _pieces(ctx: RuleContext, x: object, dim: int) -> tuple:
    lay = ctx.layout(x)
    outs = ctx.out
    result, start = [], 0
    for piece in outs:
        size = piece.shape[dim]
        dims = dict(lay.dims)
        if dim in dims:
            dims[dim] = dims[dim][start:start + size]
        result.append(Layout(dims))
        start += size
    return tuple(result)


def _rewrite_split(node, kept) -> None:
    """split/chunk sizes along a pruned dim become explicit per-piece sizes."""
    x = node.args[0]
    dim_arg = node.kwargs.get("dim", node.args[2] if len(node.args) > 2 else 0)
    sizes = kept.piece_sizes(node, dim_arg)
    if sizes is None:
        return
    if node.op == "call_method":
        node.target = "split"
    else:
        node.target = torch.split
    node.args = (x, list(sizes), dim_arg)
    node.kwargs = {}


@register([torch.split, torch.chunk, torch.tensor_split, *methods("split", "chunk", "tensor_split")],
          rewrite=_rewrite_split, liveness=Liveness.MOVEMENT)
def split(ctx: RuleContext) -> tuple:
    x = ctx.arg(0)
    dim = ctx.value(ctx.arg(2, "dim", 0)) % ctx.info(x).ndim
    return _pieces(ctx, x, dim)


@register([torch.unbind, Method("unbind")], liveness=Liveness.MOVEMENT)
def unbind(ctx: RuleContext) -> tuple:
    x = ctx.arg(0)
    rank = ctx.info(x).ndim
    dim = ctx.value(ctx.arg(1, "dim", 0)) % rank
    lay = ctx.layout(x)
    ctx.freeze(lay.get(dim), "unbind along a channel dim")
    dims = {(d if d < dim else d - 1): ids for d, ids in lay.dims.items() if d != dim}
    return tuple(Layout(dims) for _ in ctx.out)


# ---- shapes (``graphprune.shapes.registry``)

@formula([torch.cat, torch.concat])
def cat_shape(call: Call) -> Meta | None:
    tensors, dim = call.arg(0, "tensors"), call.arg(1, "dim", 0)
    if not isinstance(tensors, (tuple, list)) or not tensors or not call.only("tensors", "dim", max_args=2):
        return None
    metas = [spec(t) for t in tensors]
    if None in metas:
        return None
    first = metas[0]
    d = dim_index(dim, first.ndim)
    if d is None or first.ndim == 0 or any(m.dtype != first.dtype or m.device != first.device
                                           or m.ndim != first.ndim for m in metas):
        return None
    if any(m.shape[:d] != first.shape[:d] or m.shape[d + 1:] != first.shape[d + 1:] for m in metas):
        return None
    size = sum(m.shape[d] for m in metas)
    return Meta((*first.shape[:d], size, *first.shape[d + 1:]), first.dtype, first.device)


def _piece_metas(x: Meta, d: int, sizes: list[int]) -> tuple[Meta, ...]:
    return tuple(Meta((*x.shape[:d], s, *x.shape[d + 1:]), x.dtype, x.device) for s in sizes)


@formula([torch.chunk, *methods("chunk")])
def chunk_shape(call: Call) -> tuple[Meta, ...] | None:
    x = spec(call.args[0]) if call.args else None
    chunks = call.arg(1, "chunks")
    if x is None or not call.only("chunks", "dim", max_args=3) or not isinstance(chunks, int) or chunks <= 0:
        return None
    d = dim_index(call.arg(2, "dim", 0), x.ndim)
    if d is None or x.ndim == 0 or x.shape[d] == 0:
        return None
    n = x.shape[d]
    step = -(-n // chunks)
    return _piece_metas(x, d, [min(step, n - i) for i in range(0, n, step)])


@formula([torch.split, *methods("split")])
def split_shape(call: Call) -> tuple[Meta, ...] | None:
    x = spec(call.args[0]) if call.args else None
    size = call.arg(1, "split_size_or_sections", call.kwargs.get("split_size"))
    if x is None or not call.only("split_size_or_sections", "split_size", "dim", max_args=3):
        return None
    d = dim_index(call.arg(2, "dim", 0), x.ndim)
    if d is None or x.ndim == 0 or x.shape[d] == 0:
        return None
    n = x.shape[d]
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return _piece_metas(x, d, [min(size, n - i) for i in range(0, n, size)])
    sections = ints((size,)) if isinstance(size, (tuple, list)) else None
    if sections is None or sum(sections) != n or any(s < 0 for s in sections):
        return None
    return _piece_metas(x, d, list(sections))
