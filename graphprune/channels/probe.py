"""Probe an opaque function for pure data movement (the fallback for ops without a rule).

Functions that frameworks keep opaque to fx (timm's ``window_reverse``, ``window_partition``...) are
often pure movement. We run the function on element ids: the input filled with 1..N, then with a
shuffled 1..N. A position-based movement puts the same source positions in the same output places
both times; a data-dependent gather (sort, top-k) does not and is rejected. If every output channel
comes from one input channel along one output dim, that is an exact channel map. A second run with
one channel fewer checks that the function adapts to a narrower input; otherwise no map is returned
and the caller freezes the channels as for any unknown op.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.fx as fx

from graphprune.channels.context import RuleContext
from graphprune.channels.layout import Layout
from graphprune.eager_args import node_args
from graphprune.shapes.registry import TensorInfo

MAX_ELEMENTS = 4_000_000


def _tensor_arg(ctx: RuleContext) -> tuple[int, fx.Node] | None:
    tensors = [(i, a) for i, a in enumerate(ctx.node.args) if isinstance(a, fx.Node)
               and isinstance(ctx.values.get(a.name), TensorInfo)]
    others = [a for a in ctx.node.kwargs.values() if isinstance(a, fx.Node)]
    if len(tensors) != 1 or others:
        return None
    return tensors[0]


def _call(ctx: RuleContext, position: int, tensor: torch.Tensor) -> Any:
    args, kwargs = node_args(ctx.node, lambda n: ctx.values[n.name])
    args = list(args)
    args[position] = tensor
    return ctx.node.target(*args, **kwargs)


def _sources(ctx: RuleContext, position: int, shape: tuple[int, ...]) -> np.ndarray | None:
    """Flat source index of every output element, or None if the function is not pure movement."""
    n = int(np.prod(shape))
    base = torch.arange(1, n + 1, dtype=torch.float64).reshape(shape)
    shuffle = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    shuffled = (shuffle + 1).to(torch.float64).reshape(shape)
    out_a, out_b = _call(ctx, position, base), _call(ctx, position, shuffled)
    if not isinstance(out_a, torch.Tensor) or not isinstance(out_b, torch.Tensor) or out_a.shape != out_b.shape:
        return None
    a, b = out_a.detach().numpy().ravel(), out_b.detach().numpy().ravel()
    if not (np.all(a == np.round(a)) and a.min() >= 1 and a.max() <= n and np.all(b == np.round(b))):
        return None
    src_a = a.astype(np.int64) - 1
    src_b = np.empty(n, dtype=np.int64)
    src_b[shuffle.numpy()] = np.arange(n)
    if not np.array_equal(src_a, src_b[b.astype(np.int64) - 1]):
        return None
    return src_a.reshape(out_a.shape)


def probe_movement(ctx: RuleContext) -> Layout | None:
    found = _tensor_arg(ctx)
    out = ctx.out
    if found is None or not isinstance(out, TensorInfo) or ctx.node.op != "call_function":
        return None
    position, x = found
    info, lay = ctx.values[x.name], ctx.layout(x)
    if not isinstance(lay, Layout) or not lay.dims or int(np.prod(info.shape)) > MAX_ELEMENTS:
        return None
    try:
        sources = _sources(ctx, position, info.shape)
        if sources is None or sources.shape != out.shape:
            return None
        maps = _channel_maps(sources, info.shape, lay)
        if maps is None or not _adapts(ctx, position, info.shape, maps[1], out.shape):
            return None
        dims = maps[0]
    except Exception:
        return None
    return Layout(dims)


def _channel_maps(sources: np.ndarray, shape: tuple[int, ...],
                  lay: Layout) -> tuple[dict[int, np.ndarray], dict[int, tuple[int, np.ndarray]]] | None:
    """Per output dim: the elements it carries, and (input dim, input channel index per position)."""
    strides = np.cumprod((1, *shape[::-1][:-1]))[::-1]
    dims, coords = {}, {}
    for d, ids in lay.dims.items():
        channel = (sources // strides[d]) % shape[d]
        varying = [j for j in range(channel.ndim) if channel.shape[j] > 1
                   and not (channel == channel.take([0], axis=j)).all()]
        if len(varying) != 1 or varying[0] in dims:
            return None
        j = varying[0]
        along = np.moveaxis(channel, j, 0).reshape(channel.shape[j], -1)[:, 0]
        dims[j], coords[j] = ids[along], (d, along)
    return dims, coords


def _adapts(ctx: RuleContext, position: int, shape: tuple[int, ...], coords: dict[int, tuple[int, np.ndarray]],
            out_shape: tuple[int, ...]) -> bool:
    """Removal must commute with the function: with channel 0, or the last channel, removed from the
    input, the output must be exactly the original output without the positions that carried it (a roll
    along channels fails this; a window partition passes)."""
    n = int(np.prod(shape))
    base = torch.arange(1, n + 1, dtype=torch.float64).reshape(shape)
    full = _call(ctx, position, base)
    for j, (d, along) in coords.items():
        for removed in (0, shape[d] - 1):
            keep_in = torch.tensor([i for i in range(shape[d]) if i != removed])
            keep_out = torch.from_numpy(np.flatnonzero(along != removed))
            got = _call(ctx, position, base.index_select(d, keep_in))
            if not isinstance(got, torch.Tensor) or not torch.equal(got, full.index_select(j, keep_out)):
                return False
    return True
