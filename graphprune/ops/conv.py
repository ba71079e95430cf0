"""Convolutions and transposed convolutions, as modules and as functionals over loose weights.

A convolution's weight rows are new output channels; its weight columns are the input channels
(unified with whatever produced them). A grouped convolution with several input channels per group is
pruned *within* groups: input position j of every group is one channel (weight column j), output
position j of every group another, so all groups narrow alike and ``groups`` stays (Torch-Pruning does
the same; RegNet and ResNeXt then lose MACs with both widths). Depthwise convolutions (one input channel
per group, any multiplier) are pruned by whole groups: the input channel of group a and its output
channels form one unit, so only ``groups`` shrinks.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from graphprune.channels.context import RuleContext
from graphprune.channels.elements import Ids
from graphprune.channels.layout import EMPTY, Layout
from graphprune.ops.registry import Liveness, Trait, declare, formula, register, resizer
from graphprune.shapes.registry import (
    Call,
    Meta,
    as_tuple,
    matches,
    module_input,
    numel,
)

_CONV_ND = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3, nn.ConvTranspose1d: 1, nn.ConvTranspose2d: 2,
            nn.ConvTranspose3d: 3}


# Traits: what consumers (scoring, masks, ADMM, costs, selectors, liveness) need to know about the weights.
declare([nn.modules.conv._ConvNd, F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d,
         F.conv_transpose3d], traits={Trait.WEIGHT_LAYER})
declare([nn.modules.conv._ConvTransposeNd, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d],
        traits={Trait.TRANSPOSED}, input_weight_dim=0)
declare([nn.Conv1d, nn.Conv2d, nn.Conv3d], traits={Trait.FILTER_ROWS}, input_weight_dim=1)
for _module, _function in ((nn.Conv1d, F.conv1d), (nn.Conv2d, F.conv2d), (nn.Conv3d, F.conv3d)):
    declare([_module], functional=_function)  # PX's all-ones copy runs a box filter with it


def _channel_dim(ctx: RuleContext, x: object, spatial: int) -> int:
    info = ctx.info(x)
    return 1 if info is not None and info.ndim == spatial + 2 else 0


def _conv_layout(ctx: RuleContext, x: object, cdim: int, out_ids: Ids | None) -> Layout:
    """Output layout: only the channel dim carries channels; spatial dims of the input are mixed."""
    lay = ctx.layout(x)
    if isinstance(lay, Layout):
        for d, ids in lay.dims.items():
            if d != cdim:
                ctx.freeze(ids, "non-channel dim mixed by a convolution")
    return Layout({cdim: out_ids}) if out_ids is not None else EMPTY


def couple_conv(ctx: RuleContext, in_ids: Ids | None, w_out: Ids | None, w_in: Ids | None,
                bias: Ids | None, groups: int, transposed: bool) -> Ids | None:
    """Record a (transposed) convolution's couplings; return the output channel elements."""
    if transposed:
        w_out, w_in = w_in, w_out  # weight is (in, out/groups, ...)
    if bias is not None and w_out is not None:
        if len(bias) == len(w_out):
            ctx.table.unify(bias, w_out)
        else:
            ctx.freeze(bias, "bias size differs from the weight's output dim")
    if groups == 1:
        if in_ids is not None and w_in is not None:
            ctx.table.unify(in_ids, w_in)
        elif in_ids is not None:
            ctx.freeze(in_ids, "convolution weight is not a tracked parameter")
        else:  # the input's channels are unknown, so the weight's input dim must keep its width
            ctx.freeze(w_in, "convolution input channels are not tracked")
        return w_out
    if transposed or w_out is None or in_ids is None:
        ctx.freeze(w_in, "per-group input dim of a grouped convolution whose groups cannot be followed")
        ctx.freeze(in_ids, "grouped convolution whose groups cannot be followed")
        ctx.freeze(w_out, "grouped convolution whose groups cannot be followed")
        return w_out
    units_in = in_ids.reshape(groups, -1)
    units_out = w_out.reshape(groups, -1)
    if w_in is not None and len(w_in) == units_in.shape[1] and ctx.name not in ctx.table.whole_group_convs:
        # Several input channels per group: prune *within* groups. Position j of every group is one
        # channel (it is weight column j), and so is output position j of every group, so every group
        # shrinks alike and ``groups`` stays: the conv's MACs fall with both widths, as a dense conv's do.
        ctx.table.unify(np.tile(w_in, groups), units_in.reshape(-1))
        if groups > 1:
            ctx.table.unify(np.tile(units_out[0], groups - 1), units_out[1:].reshape(-1))
        ctx.table.within_group_convs[ctx.name] = (w_out, groups)
        return w_out
    # One input channel per group (depthwise and its multipliers), or narrowing within groups would
    # tie every channel together (analysis.analyze_until_stable): remove whole groups.
    ctx.freeze(w_in, "per-group input dim of a grouped convolution (whole groups are removed instead)")
    for k in range(1, units_in.shape[1]):
        ctx.table.unify(units_in[:, 0], units_in[:, k])
    for k in range(units_out.shape[1]):
        ctx.table.unify(units_in[:, 0], units_out[:, k])
    return w_out


@register(list(_CONV_ND), liveness=Liveness.LINEAR)
def conv_module(ctx: RuleContext) -> Layout:
    m = ctx.module
    x = ctx.arg(0, "input")
    cdim = _channel_dim(ctx, x, _CONV_ND[type(m)] if type(m) in _CONV_ND else m.weight.ndim - 2)
    lay = ctx.layout(x)
    in_ids = lay.get(cdim) if isinstance(lay, Layout) else None
    transposed = isinstance(m, nn.modules.conv._ConvTransposeNd)
    plain = m.groups == 1 and not transposed
    w_in = ctx.bind_param("weight", 1, in_ids) if plain else ctx.param("weight", 1)
    w_out = ctx.param("weight", 0)
    bias = ctx.bind_param("bias", 0, w_out) if plain else ctx.param("bias", 0)
    out = couple_conv(ctx, in_ids, w_out, w_in, bias, m.groups, transposed)
    return _conv_layout(ctx, x, cdim, out)


# ``torch.export``'s ATen convolutions take F.conv2d's arguments (graphprune/ops/aten.py holds the other twins).
_ATEN_CONV = {torch.ops.aten.conv1d.default: (1, False), torch.ops.aten.conv2d.default: (2, False),
              torch.ops.aten.conv3d.default: (3, False)}
_F_CONV = {F.conv1d: (1, False), F.conv2d: (2, False), F.conv3d: (3, False),
           F.conv_transpose1d: (1, True), F.conv_transpose2d: (2, True), F.conv_transpose3d: (3, True),
           torch.conv1d: (1, False), torch.conv2d: (2, False), torch.conv3d: (3, False), **_ATEN_CONV}
declare(list(_ATEN_CONV), traits={Trait.WEIGHT_LAYER})


def _rewrite_groups(node, kept) -> None:
    """Functional grouped convs bake ``groups``: re-derive it from the new input and weight widths."""
    nd, transposed = _F_CONV[node.target]
    index = 7 if transposed else 6
    groups = node.args[index] if len(node.args) > index else node.kwargs.get("groups", 1)
    if not isinstance(groups, int) or groups == 1 or transposed:
        return
    x, w = node.args[0], node.args[1]
    cdim = 1 if len(kept.old_shape(x)) == nd + 2 else 0
    new_in, new_per_group = kept.new_shape(x)[cdim], kept.new_shape(w)[1]
    new_groups = new_in // new_per_group  # whole groups removed, or every group narrowed alike
    if new_groups == groups:
        return
    if len(node.args) > index:
        node.args = (*node.args[:index], new_groups, *node.args[index + 1:])
    else:
        node.kwargs = {**node.kwargs, "groups": new_groups}


@register(list(_F_CONV), rewrite=_rewrite_groups, liveness=Liveness.LINEAR)
def conv_functional(ctx: RuleContext) -> Layout:
    nd, transposed = _F_CONV[ctx.node.target]
    x, w, b = ctx.arg(0, "input"), ctx.arg(1, "weight"), ctx.arg(2, "bias")
    groups = ctx.value(ctx.arg(6 if not transposed else 7, "groups", 1))
    cdim = _channel_dim(ctx, x, nd)
    lay, wl = ctx.layout(x), ctx.layout(w)
    in_ids = lay.get(cdim) if isinstance(lay, Layout) else None
    wl = wl if isinstance(wl, Layout) else EMPTY
    for d in set(wl.dims) - {0, 1}:  # e.g. a flat per-expert weight viewed to (out, in, kh, kw)
        ctx.freeze(wl.get(d), "kernel dim of a convolution weight")
    bl = ctx.layout(b) if b is not None else EMPTY
    w_in = wl.get(1)
    out = couple_conv(ctx, in_ids, wl.get(0), w_in, bl.get(0) if isinstance(bl, Layout) else None,
                      groups, transposed)
    return _conv_layout(ctx, x, cdim, out)


# ---- shapes: result shape and MACs without running the kernel (``graphprune.shapes.registry``)

@formula([nn.Conv1d, nn.Conv2d, nn.Conv3d])
def conv_shape(call: Call) -> Meta | None:
    """Zero-padded convolution; MACs = output elements x (in/groups x kernel), as torch counts them."""
    m, x = call.module, module_input(call)
    nd = _CONV_ND[type(m)]
    if x is None or m.padding_mode != "zeros" or x.ndim not in (nd + 1, nd + 2):
        return None
    w = m.weight
    if w.dtype != x.dtype or w.device != x.device or w.ndim != nd + 2 or x.shape[-nd - 1] != w.shape[1] * m.groups:
        return None
    if not matches(m.bias, (w.shape[0],), x):
        return None
    spatial, kernel = x.shape[-nd:], tuple(w.shape[2:])
    if m.padding == "same":
        out = spatial
    else:
        pad = (0,) * nd if m.padding == "valid" else as_tuple(m.padding, nd)
        out = tuple((s + 2 * p - d * (k - 1) - 1) // st + 1
                    for s, p, d, k, st in zip(spatial, pad, as_tuple(m.dilation, nd), kernel, as_tuple(m.stride, nd)))
    if any(o <= 0 for o in out):
        return None
    shape = (*x.shape[:-nd - 1], w.shape[0], *out)
    call.macs += numel(shape) * numel(tuple(w.shape[1:]))
    return Meta(shape, x.dtype, x.device)


# ---- resize: size attributes follow the shrunk weight


@resizer([nn.modules.conv._ConvNd])
def _resize_conv(m: nn.modules.conv._ConvNd, new_in: int | None) -> None:
    w = m.weight
    if m.transposed:
        m.in_channels = w.shape[0]
        m.out_channels = w.shape[1] * m.groups
        return
    per_group_in = w.shape[1]
    if m.groups > 1 and new_in is not None:
        m.groups = new_in // per_group_in
    elif m.groups > 1 and per_group_in == 1:  # no graph to ask (apply's module form): depthwise convs
        m.groups = m.groups * w.shape[0] // m.out_channels  # lose whole groups (``couple_conv``)
    m.in_channels = per_group_in * m.groups
    m.out_channels = w.shape[0]
