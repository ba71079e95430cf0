"""Element-wise ops: activations, arithmetic with broadcasting, dropout, casts, spatial-only ops.

Channel c of the output depends only on channel c of each input, so inputs' channels aligned on the
same output dim are one channel (unified). An input that is broadcast along a channel dim (size 1)
does not couple; an input whose aligned dim carries no tracked channels pins the other side (frozen),
because one operand cannot shrink alone.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

from graphprune.channels.context import RuleContext
from graphprune.channels.layout import EMPTY, Layout
from graphprune.ops.registry import Liveness, methods, register, resizer
from graphprune.shapes.registry import TensorInfo


def broadcast_layout(ctx: RuleContext, operands: list) -> Layout:
    """Couple the channels of broadcast-aligned operands and return the output layout."""
    out = ctx.out
    if not isinstance(out, TensorInfo):
        ctx.freeze_inputs("element-wise op with a non-tensor result")
        return EMPTY
    rank = out.ndim
    dims = {}
    for d in range(rank):
        aligned = []
        for a in operands:
            info = ctx.info(a)
            k = d - (rank - info.ndim) if info is not None else -1
            if k < 0:
                continue
            lay = ctx.layout(a)
            ids = lay.get(k) if isinstance(lay, Layout) else None
            if info.shape[k] == 1 and out.shape[d] != 1:
                if ids is not None:  # one channel broadcast over many: it can never be removed
                    ctx.freeze(ids, "single channel broadcast over a dim")
                continue
            aligned.append(ids)
        ids = ctx.couple_all(aligned, "combined element-wise with a tensor whose channels are not tracked")
        if ids is not None:
            dims[d] = ids
    return Layout(dims)


def same_layout(ctx: RuleContext, arg: object) -> Layout:
    """Output indexes like input ``arg`` (unary ops); dims whose size changed lose their channels."""
    lay, out = ctx.layout(arg), ctx.out
    if not isinstance(lay, Layout) or not isinstance(out, TensorInfo):
        ctx.freeze_inputs("unary op with an unexpected result")
        return EMPTY
    dims = {}
    for d, ids in lay.dims.items():
        if d < out.ndim and out.shape[d] == len(ids):
            dims[d] = ids
        else:
            ctx.freeze(ids, "dimension resized by a spatial op")
    return Layout(dims)


BINARY = [
    operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.pow,
    operator.mod, operator.iadd, operator.isub, operator.imul, operator.itruediv,
    torch.add, torch.sub, torch.subtract, torch.mul, torch.multiply, torch.div, torch.divide,
    torch.true_divide, torch.maximum, torch.minimum, torch.pow, torch.fmod, torch.remainder,
    torch.eq, torch.ne, torch.lt, torch.gt, torch.le, torch.ge, torch.logical_and, torch.logical_or,
    torch.where, torch.lerp, torch.addcmul, torch.addcdiv, torch.masked_fill,
    *methods("add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "pow", "maximum", "minimum",
             "masked_fill", "masked_fill_", "where", "lerp", "addcmul", "eq", "ne", "lt", "gt", "le", "ge",
             "__add__", "__radd__", "__mul__", "__rmul__", "__sub__", "__rsub__", "__truediv__"),
]


@register(BINARY, liveness=Liveness.ELEMENTWISE)
def elementwise(ctx: RuleContext) -> Layout:
    operands = [a for a in (*ctx.node.args, *ctx.node.kwargs.values())]
    return broadcast_layout(ctx, operands)


UNARY = [
    operator.neg, operator.abs, operator.invert,
    torch.relu, torch.relu_, torch.sigmoid, torch.tanh, torch.exp, torch.log, torch.sqrt, torch.rsqrt,
    torch.abs, torch.neg, torch.sin, torch.cos, torch.erf, torch.clamp, torch.clip, torch.square,
    torch.reciprocal, torch.sign, torch.floor, torch.ceil, torch.round, torch.nan_to_num, torch.dropout,
    torch.clamp_min, torch.clamp_max, torch.clone, torch.detach,
    F.relu, F.relu6, F.gelu, F.silu, F.sigmoid, F.tanh, F.hardswish, F.hardsigmoid, F.hardtanh,
    F.leaky_relu, F.elu, F.selu, F.celu, F.mish, F.softplus, F.softsign, F.tanhshrink, F.logsigmoid,
    F.threshold, F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout,
    F.relu_, F.hardtanh_, F.elu_, F.leaky_relu_,
    *methods("relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "exp", "log", "sqrt", "rsqrt", "abs",
             "neg", "clamp", "clamp_", "clamp_min", "clamp_max", "clip", "float", "half", "double",
             "bfloat16", "to", "type", "type_as", "contiguous", "clone", "detach", "sign", "square",
             "reciprocal", "sin", "cos", "erf", "floor", "ceil", "round", "gelu", "silu", "hardswish",
             "requires_grad_", "cpu", "cuda", "__neg__", "__abs__"),
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh,
    nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.Mish, nn.Softplus, nn.Softsign, nn.Tanhshrink,
    nn.LogSigmoid, nn.Threshold, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.FeatureAlphaDropout, nn.Identity,
]


@register(UNARY, liveness=Liveness.ELEMENTWISE)
def unary(ctx: RuleContext) -> Layout:
    return same_layout(ctx, ctx.arg(0, "input"))


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


@register([nn.PReLU], liveness=Liveness.PER_CHANNEL)
def prelu(ctx: RuleContext) -> Layout:
    lay = same_layout(ctx, ctx.arg(0))
    weight = ctx.param("weight", 0)
    if weight is not None:
        ctx.couple(lay.get(1), weight, "PReLU slope on an untracked channel dim")
    return lay


@register([F.glu], liveness=Liveness.PER_CHANNEL)
def glu(ctx: RuleContext) -> Layout:
    """glu(x, dim) = a * sigmoid(b) with (a, b) the two halves: half i of a pairs with half i of b."""
    lay = ctx.layout(ctx.arg(0))
    info = ctx.info(ctx.arg(0))
    dim = ctx.value(ctx.arg(1, "dim", -1))
    dim = dim + info.ndim if dim < 0 else dim
    dims = dict(lay.dims)
    ids = dims.get(dim)
    if ids is not None:
        half = len(ids) // 2
        ctx.table.unify(ids[:half], ids[half:])
        dims[dim] = ids[:half]
    return Layout(dims)


@resizer([nn.PReLU])
def _resize_prelu(m: nn.PReLU, new_in: int | None) -> None:
    m.num_parameters = m.weight.shape[0]
