"""Pooling and resampling: max/avg/adaptive/lp pooling and upsampling, as functions and modules.

Each channel is resampled on its own, so channels pass through unchanged and only non-channel dims
change size. The shape formulas compute torch's output sizes (ceil mode, padding, dilation) and
decline every case they do not model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from graphprune.channels.context import RuleContext
from graphprune.channels.layout import EMPTY, Layout
from graphprune.ops.elementwise import same_layout
from graphprune.ops.registry import Liveness, formula, register
from graphprune.shapes.registry import Call, Meta, as_tuple, module_input, spec

SPATIAL = [
    F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, F.adaptive_max_pool1d,
    F.adaptive_max_pool2d, F.adaptive_max_pool3d, F.lp_pool1d, F.lp_pool2d, F.interpolate, F.upsample,
    F.upsample_nearest, F.upsample_bilinear, torch.max_pool2d, torch.avg_pool1d, torch.adaptive_avg_pool1d,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d, nn.LPPool1d, nn.LPPool2d, nn.Upsample, nn.UpsamplingNearest2d,
    nn.UpsamplingBilinear2d,
]


@register(SPATIAL, liveness=Liveness.PER_CHANNEL)
def spatial(ctx: RuleContext) -> Layout:
    """Pooling and resampling: each channel is resampled on its own; only non-channel dims change."""
    lay, out = ctx.layout(ctx.arg(0, "input")), ctx.out
    if isinstance(out, tuple):  # pooling with return_indices
        one = same_layout(ctx, ctx.arg(0, "input"))
        return (one, one)  # type: ignore[return-value]
    return same_layout(ctx, ctx.arg(0, "input")) if isinstance(lay, Layout) else EMPTY


# ---- shapes (``graphprune.shapes.registry``)

_POOL_DIMS = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3, nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3}


def _pool_size(size: int, k: int, pad: int, stride: int, dilation: int, ceil: bool) -> int:
    """torch's pooling_output_shape: a ceil-mode window must start inside the (left-padded) input."""
    out = (size + 2 * pad - dilation * (k - 1) - 1 + (stride - 1 if ceil else 0)) // stride + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@formula(list(_POOL_DIMS))
def pool_shape(call: Call) -> Meta | None:
    m, x = call.module, module_input(call)
    nd = _POOL_DIMS[type(m)]
    if x is None or x.ndim not in (nd + 1, nd + 2) or getattr(m, "return_indices", False):
        return None
    stride = m.stride if m.stride not in (None, (), []) else m.kernel_size
    k, st, pad = as_tuple(m.kernel_size, nd), as_tuple(stride, nd), as_tuple(m.padding, nd)
    dil = as_tuple(getattr(m, "dilation", 1), nd)
    spatial = x.shape[-nd:]
    if min(*k, *st, *dil) <= 0 or 0 in x.shape[-nd - 1:]:
        return None
    if any(2 * p > (d * (kk - 1) + 1) for p, d, kk in zip(pad, dil, k)) or min(pad) < 0:
        return None  # torch: "pad should be at most half of effective kernel size"
    out = tuple(_pool_size(s, kk, p, t, d, m.ceil_mode) for s, kk, p, t, d in zip(spatial, k, pad, st, dil))
    if any(o <= 0 for o in out):
        return None
    return Meta((*x.shape[:-nd], *out), x.dtype, x.device)


_ADAPTIVE_DIMS = {nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveAvgPool3d: 3,
                  nn.AdaptiveMaxPool1d: 1, nn.AdaptiveMaxPool2d: 2, nn.AdaptiveMaxPool3d: 3}


@formula([F.adaptive_avg_pool2d])
def adaptive_avg_pool2d_shape(call: Call) -> Meta | None:
    x = spec(call.arg(0, "input"))
    if x is None or not x.dtype.is_floating_point or not call.only("input", "output_size", max_args=2):
        return None
    return adaptive_shape(x, call.arg(1, "output_size"), 2)


@formula(list(_ADAPTIVE_DIMS))
def adaptive_pool_shape(call: Call) -> Meta | None:
    m, x = call.module, module_input(call)
    if x is None or getattr(m, "return_indices", False):
        return None
    return adaptive_shape(x, m.output_size, _ADAPTIVE_DIMS[type(m)])


def adaptive_shape(x: Meta, output_size: Any, nd: int) -> Meta | None:
    sizes = as_tuple(output_size, nd)
    if x.ndim not in (nd + 1, nd + 2) or len(sizes) != nd or 0 in x.shape[-nd - 1:]:
        return None
    out = tuple(s if o is None else o for s, o in zip(x.shape[-nd:], sizes))
    if any(not isinstance(o, int) or o < 0 for o in out):
        return None
    return Meta((*x.shape[:-nd], *out), x.dtype, x.device)
