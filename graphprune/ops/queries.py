"""Shape queries: ``x.size()``, ``x.dim()``, ``x.shape``, ``len(x)``... read sizes, not channel values.

Sizes re-evaluate on the pruned graph by themselves, so these ops carry no channels (``x.T``/``x.mT``
and ``x.data``, which return tensors, move channels like a transpose or a copy).
"""

from __future__ import annotations

import builtins
from typing import Any

import torch

from graphprune.channels.context import RuleContext, empty_like
from graphprune.channels.layout import Layout
from graphprune.ops.elementwise import same_layout
from graphprune.ops.registry import Liveness, formula, methods, register
from graphprune.shapes.registry import Call, dim_index, spec

SHAPE_QUERIES = [builtins.getattr, builtins.len,
                 *methods("size", "dim", "numel", "nelement", "ndimension", "stride", "data_ptr",
                          "is_contiguous")]


@register(SHAPE_QUERIES, liveness=Liveness.SHAPE_QUERY)
def shape_query(ctx: RuleContext) -> object:
    """Sizes are read, not channels: they re-evaluate on the pruned graph by themselves."""
    if ctx.node.target is builtins.getattr:
        attr = ctx.node.args[1]
        if attr in ("shape", "dtype", "device", "ndim", "is_cuda"):
            return None
        if attr in ("T", "mT"):
            lay = ctx.layout(ctx.node.args[0])
            rank = ctx.out.ndim
            order = list(range(rank))[::-1] if attr == "T" else [*range(rank - 2), rank - 1, rank - 2]
            return Layout({new: lay.get(old) for new, old in enumerate(order) if lay.get(old) is not None})
        if attr == "data":
            return same_layout(ctx, ctx.node.args[0])
        ctx.freeze_inputs(f"attribute '.{attr}' of a tensor")
        return empty_like(ctx.out)
    return None


# ---- shapes (``graphprune.shapes.registry``)

@formula(methods("size"))
def size_shape(call: Call) -> Any:
    x = spec(call.args[0]) if call.args else None
    if x is None or not call.only("dim", max_args=2):
        return None
    dim = call.arg(1, "dim")
    if dim is None:
        return torch.Size(x.shape)
    d = dim_index(dim, x.ndim)
    return None if d is None or x.ndim == 0 else x.shape[d]


@formula(methods("dim"))
def ndim_shape(call: Call) -> int | None:
    x = spec(call.args[0]) if call.args and len(call.args) == 1 and not call.kwargs else None
    return None if x is None else x.ndim


@formula([builtins.getattr])
def attribute_shape(call: Call) -> Any:
    x = spec(call.args[0]) if len(call.args) == 2 and not call.kwargs else None
    name = call.args[1] if x is not None else None
    if name == "shape":
        return torch.Size(x.shape)
    if name == "ndim":
        return x.ndim
    if name == "dtype":
        return x.dtype
    return None
