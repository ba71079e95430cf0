"""Element-wise ops: activations, arithmetic with broadcasting, dropout, casts, PReLU and GLU.

Channel c of the output depends only on channel c of each input, so inputs' channels aligned on the
same output dim are one channel (unified). An input that is broadcast along a channel dim (size 1)
does not couple; an input whose aligned dim carries no tracked channels pins the other side (frozen),
because one operand cannot shrink alone.
"""

from __future__ import annotations

import operator
from numbers import Number
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from graphprune.channels.context import RuleContext
from graphprune.channels.layout import EMPTY, Layout
from graphprune.ops.registry import Liveness, Method, declare, formula, methods, register, resizer
from graphprune.shapes.registry import Call, Meta, TensorInfo, broadcast, floating, is_tensor, module_input, spec


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


# Binary ops, grouped by how they treat an all-zero channel (``OpSpec.zero``): a sum is zero where every
# operand is, a product where any is, a quotient where its numerator is.
ADDS = [
    operator.add, operator.sub, operator.iadd, operator.isub, torch.add, torch.sub, torch.subtract,
    torch.maximum, torch.minimum, torch.where,
    *methods("add", "add_", "sub", "sub_", "maximum", "minimum", "where", "__add__", "__radd__", "__sub__",
             "__rsub__"),
]
MULS = [operator.mul, operator.imul, torch.mul, torch.multiply, *methods("mul", "mul_", "__mul__", "__rmul__")]
DIVS = [operator.truediv, operator.itruediv, torch.div, torch.divide, torch.true_divide,
        *methods("div", "div_", "__truediv__")]
# Comparisons, in every spelling (``x > 0`` traces as operator.gt): a zero channel compares to a bool
# that need not be False (0 <= 0), so they keep the default zero kind "none".
COMPARISONS = [
    torch.eq, torch.ne, torch.lt, torch.gt, torch.le, torch.ge,
    operator.eq, operator.ne, operator.lt, operator.gt, operator.le, operator.ge,
    *methods("eq", "ne", "lt", "gt", "le", "ge", "__eq__", "__ne__", "__lt__", "__gt__", "__le__", "__ge__"),
]
BINARY = [
    *ADDS, *MULS, *DIVS, *COMPARISONS,
    operator.floordiv, operator.pow, operator.mod, torch.pow, torch.fmod, torch.remainder,
    torch.logical_and, torch.logical_or, torch.lerp, torch.addcmul, torch.addcdiv, torch.masked_fill,
    *methods("pow", "masked_fill", "masked_fill_", "lerp", "addcmul"),
]


@register(BINARY, liveness=Liveness.ELEMENTWISE)
def elementwise(ctx: RuleContext) -> Layout:
    operands = [a for a in (*ctx.node.args, *ctx.node.kwargs.values())]
    return broadcast_layout(ctx, operands)


declare(ADDS, zero="add")
declare(MULS, zero="mul")
declare(DIVS, zero="div")

# Unary ops, grouped the same way: f(0) = 0 keeps a zero channel zero; a clamp does when its bounds
# contain 0; the rest (sigmoid(0) = 0.5, exp, log...) do not.
KEEPS_ZERO = [
    operator.neg, operator.abs, torch.relu, torch.relu_, torch.tanh, torch.sqrt, torch.abs, torch.neg, torch.sin,
    torch.erf, torch.square, torch.sign, torch.floor, torch.ceil, torch.round, torch.nan_to_num, torch.dropout,
    torch.clone, torch.detach, F.relu, F.relu6, F.gelu, F.silu, F.tanh, F.hardswish, F.leaky_relu, F.elu,
    F.selu, F.celu, F.mish, F.softsign, F.tanhshrink, F.dropout, F.dropout1d, F.dropout2d, F.dropout3d,
    F.relu_, F.elu_, F.leaky_relu_,
    *methods("relu", "relu_", "tanh", "tanh_", "sqrt", "abs", "neg", "float", "half", "double", "bfloat16", "to",
             "type", "type_as", "contiguous", "clone", "detach", "sign", "square", "sin", "erf", "floor", "ceil",
             "round", "gelu", "silu", "hardswish", "requires_grad_", "cpu", "cuda", "__neg__", "__abs__"),
    nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Hardswish, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.Mish,
    nn.Softsign, nn.Tanhshrink, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Identity,
]
CLAMP_MODULES = [nn.Hardtanh, nn.ReLU6]
HARDTANHS = [F.hardtanh, F.hardtanh_]
CLAMP_MINS = [torch.clamp_min, *methods("clamp_min")]
CLAMP_MAXS = [torch.clamp_max, *methods("clamp_max")]
CLAMPS = [torch.clamp, torch.clip, *methods("clamp", "clamp_", "clip")]
UNARY = [
    *KEEPS_ZERO, *CLAMP_MODULES, *HARDTANHS, *CLAMP_MINS, *CLAMP_MAXS, *CLAMPS,
    operator.invert, torch.sigmoid, torch.exp, torch.log, torch.rsqrt, torch.cos, torch.reciprocal,
    F.sigmoid, F.hardsigmoid, F.softplus, F.logsigmoid, F.threshold, F.alpha_dropout, F.feature_alpha_dropout,
    *methods("sigmoid", "sigmoid_", "exp", "log", "rsqrt", "cos", "reciprocal"),
    nn.Sigmoid, nn.Hardsigmoid, nn.Softplus, nn.LogSigmoid, nn.Threshold, nn.AlphaDropout,
    nn.FeatureAlphaDropout,
]


@register(UNARY, liveness=Liveness.ELEMENTWISE)
def unary(ctx: RuleContext) -> Layout:
    return same_layout(ctx, ctx.arg(0, "input"))


def call_arg(node: fx.Node, index: int, name: str, default: Any) -> Any:
    """Argument ``index`` (or keyword ``name``) of an fx call, as the node records it."""
    if index < len(node.args):
        return node.args[index]
    return node.kwargs.get(name, default)


def _bounds_keep_zero(lo: Any, hi: Any) -> str:
    """A clamp to [lo, hi] (None: unbounded) keeps zero iff 0 is inside; a traced bound is unknown."""
    ok_lo = lo is None or isinstance(lo, Number) and lo <= 0
    ok_hi = hi is None or isinstance(hi, Number) and hi >= 0
    return "copy" if ok_lo and ok_hi else "none"


declare(KEEPS_ZERO, zero="copy")
# x ** p for a number p > 0 keeps zero (Llama's RMSNorm: x.pow(2).mean(-1)); 2 ** x and x ** 0 do not
declare([operator.pow, torch.pow, Method("pow")], zero=lambda node, module: "copy" if isinstance(
    node.args[0] if node.args else None, fx.Node) and isinstance(e := call_arg(node, 1, "exponent", None), Number)
    and not isinstance(e, bool) and e > 0 else "none")
declare(CLAMP_MODULES, zero=lambda node, module: _bounds_keep_zero(module.min_val, module.max_val))
declare(HARDTANHS, zero=lambda node, module: _bounds_keep_zero(
    call_arg(node, 1, "min_val", -1.0), call_arg(node, 2, "max_val", 1.0)))
declare(CLAMP_MINS, zero=lambda node, module: _bounds_keep_zero(call_arg(node, 1, "min", None), None))
declare(CLAMP_MAXS, zero=lambda node, module: _bounds_keep_zero(None, call_arg(node, 1, "max", None)))
declare(CLAMPS, zero=lambda node, module: _bounds_keep_zero(
    call_arg(node, 1, "min", None), call_arg(node, 2, "max", None)))


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


# ---- shapes (``graphprune.shapes.registry``)

def _no_tensor(values: Any) -> bool:
    return not any(is_tensor(v) for v in values)


# x -> x: activations, dropout, copies. Extra arguments are scalars/flags (slope, inplace, approximate).
@formula([torch.relu, F.relu, torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, F.gelu, F.silu, F.hardswish,
          F.hardsigmoid, F.relu6, F.leaky_relu, F.elu, F.mish, torch.exp, torch.neg, operator.neg,
          *methods("relu", "sigmoid", "tanh", "contiguous", "clone", "exp", "neg")])
def unary_shape(call: Call) -> Meta | None:
    x = floating(call.args[0]) if call.args else None
    if x is None or not _no_tensor((*call.args[1:], *call.kwargs.values())) or "out" in call.kwargs:
        return None
    return x


@formula([F.dropout])
def dropout_shape(call: Call) -> Meta | None:
    p = call.arg(1, "p", 0.5)
    if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        return None
    return unary_shape(call)


# a op b with broadcasting: operands of one floating dtype and device, scalars int/float.
@formula([operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.sub, torch.mul, torch.div,
          *methods("add", "sub", "mul", "div")])
def binary_shape(call: Call) -> Meta | None:
    if len(call.args) != 2 or any(k != "alpha" for k in call.kwargs):
        return None
    metas = [spec(a) for a in call.args if is_tensor(a)]
    scalars = [a for a in call.args if not is_tensor(a)]
    if not metas or any(type(s) not in (int, float) for s in scalars):
        return None
    first = metas[0]
    if not first.dtype.is_floating_point or any(m.dtype != first.dtype or m.device != first.device for m in metas):
        return None
    shape = broadcast(*(m.shape for m in metas))
    return None if shape is None else Meta(shape, first.dtype, first.device)


@formula([nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh,
          nn.LeakyReLU, nn.ELU, nn.Mish, nn.Dropout])
def activation_module_shape(call: Call) -> Meta | None:
    return module_input(call)


@formula([nn.Dropout2d])
def dropout2d_shape(call: Call) -> Meta | None:
    x = module_input(call)
    return x if x is not None and x.ndim == 4 else None  # other ranks warn: leave that to torch


@formula([nn.Identity])
def identity_shape(call: Call) -> Any:
    return call.args[0] if len(call.args) == 1 and not call.kwargs else None
