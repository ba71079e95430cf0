"""Padding: ``F.pad`` and the padding modules. Padding a non-channel dim keeps channels; padding a
channel dim adds new (frozen) elements, or freezes the dim for the modules. A zero channel stays zero
unless constant padding adds a non-zero value (``OpSpec.zero``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from graphprune.channels.context import RuleContext
from graphprune.channels.layout import EMPTY, Layout
from graphprune.ops.elementwise import call_arg, same_layout
from graphprune.ops.registry import Liveness, declare, register, twin_of


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


def _zero_padding(node: fx.Node | None, module: nn.Module | None) -> str:
    """Constant padding adds values: only a zero pad value (or reflect/replicate) keeps zeros."""
    if module is not None:
        return "copy" if getattr(module, "value", 0) == 0 else "none"
    if twin_of(node.target) is torch.constant_pad_nd:  # (input, pad, value=0): no mode argument (ATen's too)
        return "copy" if call_arg(node, 2, "value", 0) == 0 else "none"
    mode = call_arg(node, 2, "mode", "constant")
    return "copy" if mode != "constant" or call_arg(node, 3, "value", None) in (None, 0) else "none"


declare([F.pad, torch.constant_pad_nd, *PADS], zero=_zero_padding)
