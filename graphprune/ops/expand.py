"""Broadcast copies: expand/broadcast_to/expand_as, repeat/tile and repeat_interleave. Expanded leading
dims carry no channels; a repeated channel dim repeats its elements, so every copy of a channel goes
with it."""

from __future__ import annotations

import numpy as np
import torch

from graphprune.channels.context import RuleContext
from graphprune.channels.layout import EMPTY, Layout
from graphprune.ops.elementwise import broadcast_layout
from graphprune.ops.registry import Liveness, Method, formula, methods, register
from graphprune.ops.reshape import rewrite_shape_args
from graphprune.shapes.registry import Call, Meta, dim_index, ints, spec


def _rewrite_expand(node, kept) -> None:
    rewrite_shape_args(node, kept)


@register([*methods("expand", "broadcast_to"), torch.broadcast_to], rewrite=_rewrite_expand, liveness=Liveness.MOVEMENT)
def expand(ctx: RuleContext) -> Layout:
    lay, out, info = ctx.layout(ctx.arg(0)), ctx.out, ctx.info(ctx.arg(0))
    shift = out.ndim - info.ndim
    return Layout({d + shift: ids for d, ids in lay.dims.items()})


@register([Method("expand_as")], liveness=Liveness.MOVEMENT)
def expand_as(ctx: RuleContext) -> Layout:
    return broadcast_layout(ctx, [ctx.arg(0), ctx.arg(1)])


@register([Method("repeat"), torch.tile, Method("tile")], liveness=Liveness.MOVEMENT)
def repeat(ctx: RuleContext) -> Layout:
    lay, out, info = ctx.layout(ctx.arg(0)), ctx.out, ctx.info(ctx.arg(0))
    shift = out.ndim - info.ndim
    dims = {}
    for d, ids in lay.dims.items():
        reps = out.shape[d + shift] // len(ids)
        dims[d + shift] = np.tile(ids, reps)
    return Layout(dims)


@register([torch.repeat_interleave, Method("repeat_interleave")], liveness=Liveness.MOVEMENT)
def repeat_interleave(ctx: RuleContext) -> Layout:
    """``x.repeat_interleave(r, dim)`` with an int ``r``: every index of ``dim`` ``r`` times in a row (a
    key/value head once per query head of its group); other dims pass. Tensor repeats vary per index
    and a flattening call (no ``dim``) mixes dims: those freeze."""
    x, repeats, dim = ctx.arg(0, "input"), ctx.arg(1, "repeats"), ctx.arg(2, "dim")
    lay, info = ctx.layout(x), ctx.info(x)
    d = dim_index(dim, info.ndim) if info is not None else None
    if not isinstance(lay, Layout) or not isinstance(repeats, int) or isinstance(repeats, bool) or d is None:
        ctx.freeze_inputs("repeat_interleave without an int repeat count and a dim")
        return EMPTY
    return Layout({k: np.repeat(ids, repeats) if k == d else ids for k, ids in lay.dims.items()})


# ---- shapes (``graphprune.shapes.registry``)

@formula(methods("expand"))
def expand_shape(call: Call) -> Meta | None:
    x = spec(call.args[0]) if call.args else None
    sizes = ints(call.args[1:]) if x is not None and not call.kwargs else None
    if sizes is None or len(sizes) < x.ndim:
        return None
    lead = len(sizes) - x.ndim
    if any(s < 0 for s in sizes[:lead]):
        return None
    out = list(sizes[:lead])
    for want, have in zip(sizes[lead:], x.shape):
        if want == -1 or want == have:
            out.append(have)
        elif have == 1 and want >= 0:
            out.append(want)
        else:
            return None
    return Meta(tuple(out), x.dtype, x.device)
