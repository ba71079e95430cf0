"""Indexing and gathers: ``x[...]`` (basic indexing, strided slices), ``index_select`` with a constant
index (a folded channel permutation) and ``roll``. Slices and constant indices along a pruned dim are
re-based onto the surviving indices after removal; indexing a channel dim with an int or a computed
index freezes it, since its meaning would change.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import torch
import torch.fx as fx

from graphprune.channels.context import RuleContext, empty_like
from graphprune.channels.layout import Layout
from graphprune.ops.elementwise import same_layout
from graphprune.ops.registry import Liveness, Method, formula, register
from graphprune.shapes.registry import Call, Meta, TensorInfo, spec


def _index_items(index: object) -> list:
    return list(index) if isinstance(index, tuple) else [index]


def _rewrite_getitem(node, kept) -> None:
    """Slices along a pruned channel dim are re-based onto the surviving indices."""
    x = node.args[0]
    if not isinstance(x, fx.Node) or not isinstance(kept.values.get(x.name), TensorInfo):
        return  # indexing a tuple or a size, not a tensor
    items = _index_items(node.args[1])
    new_items = list(items)
    src_dim = 0
    rank = len(kept.old_shape(x))
    n_real = sum(1 for it in items if it is not None and it is not Ellipsis)
    for k, it in enumerate(items):
        if it is Ellipsis:
            src_dim += rank - n_real
            continue
        if it is None:
            continue
        if isinstance(it, slice):
            mask = kept.mask(x, src_dim)
            bounds = [kept.old_value(b) for b in (it.start, it.stop, it.step)]
            if mask is not None and not mask.all() and bounds[2] in (None, 1):
                start, stop, _ = slice(*bounds).indices(len(mask))
                new_items[k] = slice(int(mask[:start].sum()), int(mask[:stop].sum()), None)
        src_dim += 1
    node.args = (x, tuple(new_items) if isinstance(node.args[1], tuple) else new_items[0])


@register([operator.getitem], rewrite=_rewrite_getitem, liveness=Liveness.MOVEMENT)
def getitem(ctx: RuleContext) -> object:
    x, index = ctx.arg(0), ctx.value(ctx.arg(1))
    lay = ctx.layout(x)
    if isinstance(lay, tuple):
        return lay[index] if isinstance(index, int) else tuple(lay[index])
    if isinstance(lay, dict) and index in lay:  # a packed structure read back by key
        return lay[index]
    info = ctx.info(x)
    if not isinstance(lay, Layout) or info is None:
        return empty_like(ctx.out)
    items = _index_items(index)
    if any(isinstance(it, (TensorInfo, list, torch.Tensor)) for it in items):
        ctx.freeze_inputs("advanced (tensor) indexing")
        return empty_like(ctx.out)
    n_real = sum(1 for it in items if it is not None and it is not Ellipsis)
    dims, src, dst = {}, 0, 0
    for it in items:
        if it is Ellipsis:
            for _ in range(info.ndim - n_real):
                if lay.get(src) is not None:
                    dims[dst] = lay.get(src)
                src, dst = src + 1, dst + 1
        elif it is None:
            dst += 1
        elif isinstance(it, int):
            ctx.freeze(lay.get(src), "integer index into a channel dim")
            src += 1
        elif isinstance(it, slice):
            ids = lay.get(src)
            if ids is not None:
                if it.step not in (None, 1):
                    _tie_step_blocks(ctx, ids, it)
                dims[dst] = ids[it]
            src, dst = src + 1, dst + 1
        else:
            ctx.freeze_inputs(f"index of type {type(it).__name__}")
            return empty_like(ctx.out)
    while src < info.ndim:
        if lay.get(src) is not None:
            dims[dst] = lay.get(src)
        src, dst = src + 1, dst + 1
    return Layout(dims)


def _tie_step_blocks(ctx: RuleContext, ids, it: slice) -> None:
    """``x[..., o::s]`` (rotary embeddings, even/odd splits) stays valid after pruning if every block of
    s consecutive channels is kept or removed whole: tie within blocks. Other strided slices freeze."""
    start, stop, step = it.indices(len(ids))
    if step > 1 and len(ids) % step == 0 and 0 <= start < step and stop == len(ids):
        blocks = ids.reshape(-1, step)
        ctx.table.unify(blocks[:, 1:].ravel(), np.repeat(blocks[:, 0], step - 1))
    else:
        ctx.freeze(ids, "strided slice of a channel dim")



def _constant_index(ctx_root, index: object) -> torch.Tensor | None:
    if isinstance(index, fx.Node) and index.op == "get_attr":
        value = ctx_root
        for part in str(index.target).split("."):
            value = getattr(value, part)
        return value if isinstance(value, torch.Tensor) else None
    return None


def _rewrite_index_select(node, kept) -> None:
    """Re-derive the constant index: surviving outputs, renumbered over the surviving inputs."""
    x, dim, index = node.args[0], node.args[1], node.args[2]
    gm = node.graph.owning_module
    perm = _constant_index(gm, index)
    in_mask, out_mask = kept.mask(x, dim), kept.mask(node, dim)
    if perm is None or in_mask is None or (in_mask.all() and out_mask.all()):
        return
    renumber = np.cumsum(in_mask) - 1
    new = torch.as_tensor(renumber[perm.numpy()[out_mask]], dtype=perm.dtype)
    path, _, attr = str(index.target).rpartition(".")
    owner = gm.get_submodule(path) if path else gm
    owner.register_buffer(attr, new, persistent=attr not in owner._non_persistent_buffers_set)


@register([torch.index_select, Method("index_select")], rewrite=_rewrite_index_select, liveness=Liveness.MOVEMENT)
def index_select(ctx: RuleContext) -> Layout:
    """Gather along a dim with a constant index (a folded channel permutation): exact element map."""
    x, index = ctx.arg(0), ctx.arg(2, "index")
    info = ctx.info(x)
    dim = ctx.value(ctx.arg(1, "dim")) % info.ndim
    perm = _constant_index(ctx.root, index)
    lay = ctx.layout(x)
    dims = dict(lay.dims)
    if dim in dims:
        if perm is None:
            ctx.freeze(dims.pop(dim), "gather with a computed index")
        else:
            dims[dim] = dims[dim][perm.numpy()]
    return Layout(dims)


@register([torch.roll, Method("roll")], liveness=Liveness.MOVEMENT)
def roll(ctx: RuleContext) -> Layout:
    """Rolling a non-channel dim (shifted windows) keeps channels; rolling a channel dim freezes it."""
    lay, info = ctx.layout(ctx.arg(0)), ctx.info(ctx.arg(0))
    dims = ctx.value(ctx.arg(2, "dims", None))
    rolled = range(info.ndim) if dims is None else [d % info.ndim for d in ([dims] if isinstance(dims, int) else dims)]
    for d in rolled:
        ctx.freeze(lay.get(d), "roll along a channel dim")
    return same_layout(ctx, ctx.arg(0))


# ---- shapes (``graphprune.shapes.registry``)

def _index_shape(x: Meta, index: Any) -> tuple[int, ...] | None:
    """Result shape of basic indexing (ints, slices, None, one Ellipsis), or None."""
    items = index if isinstance(index, tuple) else (index,)
    if any(not (type(i) is int or isinstance(i, slice) or i is None or i is Ellipsis) for i in items):
        return None
    if sum(1 for i in items if i is Ellipsis) > 1:
        return None
    consumed = sum(1 for i in items if i is not None and i is not Ellipsis)
    if consumed > x.ndim:
        return None
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items = (*items[:at], *([slice(None)] * (x.ndim - consumed)), *items[at + 1:])
    out, dim = [], 0
    for item in items:
        if item is None:
            out.append(1)
            continue
        size = x.shape[dim]
        dim += 1
        if isinstance(item, slice):
            if not all(v is None or type(v) is int for v in (item.start, item.stop, item.step)):
                return None
            if item.step is not None and item.step <= 0:
                return None
            out.append(len(range(*item.indices(size))))
        elif not -size <= item < size:
            return None
    return (*out, *x.shape[dim:])


@formula([operator.getitem])
def getitem_shape(call: Call) -> Any:
    if len(call.args) != 2 or call.kwargs:
        return None
    obj, index = call.args
    if isinstance(obj, (tuple, list)) and (type(index) is int or isinstance(index, slice)):
        try:
            return obj[index]
        except IndexError:
            return None
    x = spec(obj)
    shape = None if x is None else _index_shape(x, index)
    return None if shape is None else Meta(shape, x.dtype, x.device)
