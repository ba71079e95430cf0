"""Pixel and channel shuffles: channels regrouped into a grid. The channels that must stay together
for the grid to stay whole are tied (kept or removed together)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from graphprune.channels.context import RuleContext
from graphprune.channels.elements import Ids
from graphprune.channels.layout import EMPTY, Layout
from graphprune.ops.elementwise import same_layout
from graphprune.ops.registry import Liveness, register


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
