"""Data-movement ops: reshape family, permutes, concatenation, splitting, indexing, expand/repeat, pad,
pixel/channel shuffle. Index maps are exact: every output index gets the element of the input index
it copies. Where a reshape spreads one channel dim over several dims (into attention heads, into a
channel-shuffle grid), the elements that share an index in the innermost such dim are *tied* — kept
or removed together — so that every surviving tensor is still a full grid and the reshape stays valid
with re-derived sizes.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from graphprune.channels.context import RuleContext, empty_like
from graphprune.channels.elements import Ids
from graphprune.channels.layout import EMPTY, Layout
from graphprune.ops.elementwise import broadcast_layout, same_layout
from graphprune.ops.registry import Liveness, Method, methods, register
from graphprune.shapes.registry import TensorInfo


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
    carrier = varying[-1]
    rows = np.moveaxis(grid, carrier, -1).reshape(-1, out_shape[carrier])
    if len(varying) > 1:  # one channel dim spread over several dims: tie across the outer ones
        ctx.table.unify(rows[1:].ravel(), np.tile(rows[0], len(rows) - 1))
    return {outs[carrier]: rows[0].copy()}


def _rewrite_shape_args(node, kept) -> None:
    """Replace literal sizes of the target shape by the pruned sizes (``-1`` and traced sizes stay)."""
    new_shape = kept.new_shape(node)
    if node.op == "call_module":
        return
    args = list(node.args)
    packed = len(args) == 2 and isinstance(args[1], (tuple, list))
    sizes = list(args[1]) if packed else args[1:]
    if str(node.target) == "unflatten" or node.target is torch.unflatten:
        return _rewrite_unflatten(node, kept)
    if len(sizes) != len(new_shape):
        return
    for d, size in enumerate(sizes):
        if isinstance(size, int) and size != -1 and size != new_shape[d]:
            sizes[d] = new_shape[d]
        elif isinstance(size, fx.Node) and kept.new_value(size) != new_shape[d]:
            sizes[d] = new_shape[d]  # traced from a tensor that was pruned differently
    node.args = (args[0], type(args[1])(sizes)) if packed else (args[0], *sizes)


def _rewrite_unflatten(node, kept) -> None:
    x, dim, sizes = node.args[0], node.args[1], list(node.args[2])
    new_shape = kept.new_shape(node)
    dim = dim if dim >= 0 else len(new_shape) - len(sizes) + 1 + dim
    for k, size in enumerate(sizes):
        if isinstance(size, int) and size != -1:
            sizes[k] = new_shape[dim + k]
    node.args = (x, node.args[1], tuple(sizes))


RESHAPES_WITH_SIZES = [torch.reshape, *methods("view", "reshape", "unflatten"), torch.unflatten]
RESHAPES = [torch.flatten, torch.squeeze, torch.unsqueeze, nn.Flatten, nn.Unflatten,
            *methods("flatten", "squeeze", "unsqueeze", "view_as", "reshape_as", "squeeze_", "unsqueeze_")]


@register(RESHAPES_WITH_SIZES, rewrite=_rewrite_shape_args, liveness=Liveness.MOVEMENT)
def reshape_sized(ctx: RuleContext) -> Layout:
    return reshape_layout(ctx, ctx.arg(0, "input"))


@register(RESHAPES, liveness=Liveness.MOVEMENT)
def reshape(ctx: RuleContext) -> Layout:
    return reshape_layout(ctx, ctx.arg(0, "input"))


def _permuted(lay: Layout, order: Sequence[int]) -> Layout:
    return Layout({new: lay.get(old) for new, old in enumerate(order) if lay.get(old) is not None})


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
    order = list(np.moveaxis(np.arange(rank), [s % rank for s in src], [d % rank for d in dst]))
    return _permuted(ctx.layout(ctx.arg(0)), [int(o) for o in order])


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


def _rewrite_expand(node, kept) -> None:
    _rewrite_shape_args(node, kept)


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


@register([F.pad, torch.constant_pad_nd], liveness=Liveness.PAD)
def pad(ctx: RuleContext) -> Layout:
    lay, info = ctx.layout(ctx.arg(0)), ctx.info(ctx.arg(0))
    amounts = list(ctx.value(ctx.arg(1, "pad")))
    dims = dict(lay.dims)
    for k in range(len(amounts) // 2):
        d = info.ndim - 1 - k
        before, after = amounts[2 * k], amounts[2 * k + 1]
        if d in dims and (before or after):
            if before < 0 or after < 0:
                ctx.freeze(dims[d], "negative padding of a channel dim")
                continue
            extra_a, extra_b = ctx.table.new(before), ctx.table.new(after)
            ctx.freeze(np.concatenate([extra_a, extra_b]), "padding added to a channel dim")
            dims[d] = np.concatenate([extra_a, dims[d], extra_b])
    return Layout(dims)


PADS = [nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d,
        nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d, nn.ReplicationPad1d,
        nn.ReplicationPad2d, nn.ReplicationPad3d]


@register(PADS, liveness=Liveness.PAD)
def pad_module(ctx: RuleContext) -> Layout:
    m = ctx.module
    lay = ctx.layout(ctx.arg(0))
    info = ctx.info(ctx.arg(0))
    k = len(m.padding) // 2
    for d in range(info.ndim - k, info.ndim):
        if lay.get(d) is not None and any(m.padding):
            ctx.freeze(lay.get(d), "padding module applied to a channel dim")
    return same_layout(ctx, ctx.arg(0)) if not any(d in lay.dims for d in range(info.ndim - k, info.ndim)) \
        else EMPTY


def _shuffle_ids(ctx: RuleContext, ids: Ids, rows: int) -> Ids:
    """Tie ``ids`` viewed as (rows, n/rows) across rows; return the row representatives."""
    grid = ids.reshape(rows, -1)
    if rows > 1:
        ctx.table.unify(grid[1:].ravel(), np.tile(grid[0], rows - 1))
    return grid[0].copy()


@register([F.pixel_shuffle, nn.PixelShuffle, torch.pixel_shuffle], liveness=Liveness.MOVEMENT)
def pixel_shuffle(ctx: RuleContext) -> Layout:
    lay, info = ctx.layout(ctx.arg(0)), ctx.info(ctx.arg(0))
    cdim = info.ndim - 3
    ids = lay.get(cdim)
    if ids is None:
        return EMPTY
    factor = len(ids) // ctx.out.shape[cdim]
    grid = ids.reshape(-1, factor)  # channel c*r^2 + k -> (c, k)
    ctx.table.unify(grid[:, 1:].ravel(), np.repeat(grid[:, 0], factor - 1))
    return Layout({cdim: grid[:, 0].copy()})


@register([F.pixel_unshuffle, nn.PixelUnshuffle, torch.pixel_unshuffle], liveness=Liveness.MOVEMENT)
def pixel_unshuffle(ctx: RuleContext) -> Layout:
    lay, info = ctx.layout(ctx.arg(0)), ctx.info(ctx.arg(0))
    cdim = info.ndim - 3
    ids = lay.get(cdim)
    if ids is None:
        return EMPTY
    return Layout({cdim: np.repeat(ids, ctx.out.shape[cdim] // len(ids))})


@register([nn.ChannelShuffle, torch.channel_shuffle, F.channel_shuffle], liveness=Liveness.MOVEMENT)
def channel_shuffle(ctx: RuleContext) -> Layout:
    lay = ctx.layout(ctx.arg(0))
    groups = ctx.module.groups if ctx.node.op == "call_module" else ctx.value(ctx.arg(1, "groups"))
    ids = lay.get(1)
    if ids is None:
        return same_layout(ctx, ctx.arg(0))
    reps = _shuffle_ids(ctx, ids, groups)
    dims = dict(lay.dims)
    dims[1] = np.repeat(reps, groups)
    return Layout(dims)


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
