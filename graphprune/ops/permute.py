"""Dim permutations: permute, transpose/swapaxes, ``.t()``, movedim. Channels travel with their dim."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from graphprune.channels.context import RuleContext
from graphprune.channels.layout import Layout
from graphprune.ops.registry import Liveness, Method, Trait, declare, formula, methods, register
from graphprune.shapes.registry import Call, Meta, dim_index, ints, spec


def _permuted(lay: Layout, order: Sequence[int]) -> Layout:
    return Layout({new: lay.get(old) for new, old in enumerate(order) if lay.get(old) is not None})


declare([torch.permute, torch.transpose, torch.swapaxes, torch.movedim,
         *methods("permute", "transpose", "swapaxes", "movedim")], traits={Trait.REARRANGES})  # canonicalize


@register([torch.permute, *methods("permute")], liveness=Liveness.MOVEMENT)
def permute(ctx: RuleContext) -> Layout:
    rank = ctx.out.ndim
    args = ctx.value(list(ctx.node.args[1:])) or [ctx.value(ctx.node.kwargs.get("dims"))]
    order = list(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else list(args)
    return _permuted(ctx.layout(ctx.arg(0, "input")), [d % rank for d in order])


@register([torch.transpose, torch.swapaxes, torch.swapdims, *methods("transpose", "swapaxes", "swapdims")],
          liveness=Liveness.MOVEMENT)
def transpose(ctx: RuleContext) -> Layout:
    rank = ctx.out.ndim
    a, b = (ctx.value(ctx.arg(i, n)) % rank for i, n in ((1, "dim0"), (2, "dim1")))
    order = list(range(rank))
    order[a], order[b] = order[b], order[a]
    return _permuted(ctx.layout(ctx.arg(0, "input")), order)


@register([torch.t, Method("t")], liveness=Liveness.MOVEMENT)
def matrix_transpose(ctx: RuleContext) -> Layout:
    return _permuted(ctx.layout(ctx.arg(0)), [1, 0] if ctx.out.ndim == 2 else [0])


@register([torch.movedim, torch.moveaxis, *methods("movedim", "moveaxis")], liveness=Liveness.MOVEMENT)
def movedim(ctx: RuleContext) -> Layout:
    rank = ctx.out.ndim
    src, dst = ctx.value(ctx.arg(1, "source")), ctx.value(ctx.arg(2, "destination"))
    src = [src] if isinstance(src, int) else list(src)
    dst = [dst] if isinstance(dst, int) else list(dst)
    return _permuted(ctx.layout(ctx.arg(0)), moved_order(rank, [s % rank for s in src], [d % rank for d in dst]))


def moved_order(rank: int, src: Sequence[int], dst: Sequence[int]) -> list[int]:
    """The input dim each output dim of ``movedim(x, src, dst)`` holds: the moved dims at their
    destinations, the others in their order around them (what ``np.moveaxis`` does to the axes)."""
    order = [d for d in range(rank) if d not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return order


# ---- shapes (``graphprune.shapes.registry``)

@formula([torch.permute, *methods("permute")])
def permute_shape(call: Call) -> Meta | None:
    x = spec(call.args[0]) if call.args else None
    if x is None or call.kwargs:
        return None
    dims = ints(call.args[1:])
    wrapped = [dim_index(d, x.ndim) for d in dims] if dims is not None and len(dims) == x.ndim else None
    if wrapped is None or sorted(wrapped) != list(range(x.ndim)) or None in wrapped:
        return None
    return Meta(tuple(x.shape[d] for d in wrapped), x.dtype, x.device)


@formula([torch.transpose, *methods("transpose")])
def transpose_shape(call: Call) -> Meta | None:
    x = spec(call.args[0]) if call.args else None
    if x is None or call.kwargs or len(call.args) != 3:
        return None
    a, b = dim_index(call.args[1], x.ndim), dim_index(call.args[2], x.ndim)
    if a is None or b is None:
        return None
    shape = list(x.shape) or []
    if x.ndim:
        shape[a], shape[b] = shape[b], shape[a]
    return Meta(tuple(shape), x.dtype, x.device)
