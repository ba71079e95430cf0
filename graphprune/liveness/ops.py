"""How each op treats an all-zero channel (forward) and which input channels it reads (backward).

Ops are classified by the ``Liveness`` kind their channel rule declares (``graphprune.ops.registry``)
and, for element-wise families, by the exact function. Anything not listed is generic: it reads every input channel and
its result is never known to be zero. Zero kinds say when output channel c is zero for every input:

- ``copy``: when every operand that carries c is zero there (movement, zero-preserving unary ops,
  pooling, sums over other dims: each output value is a copy or a zero-preserving function of
  values of the same channel);
- ``add``: when every float operand carries c and is zero there, and scalar operands are 0;
- ``mul``: when any operand is zero at c (or a scalar operand is 0);
- ``div``: when the first operand is zero at c and the others are non-zero numbers;
- ``none``: never (sigmoid(0) = 0.5, exp, softmax...).

Read kinds: ``none`` (shape queries read no values), ``copy`` (channel c of the result depends on
channel c of the operands only, and channels the result drops are never looked at), ``per-channel``
(as copy, but channels the result does not carry are read: reductions over channels) and ``all``.
Conv/linear (``linear``), per-channel norms (``norm``) and scaled dot-product ``attention`` have
their own exact treatment. In a contraction (matmul, q.k) a channel contributes a product: when one
factor is zero there, the other is not read."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from numbers import Number
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

import graphprune.ops  # noqa: F401  (fills the rule table)
from graphprune.ops.registry import Liveness, Method, Trait, has_trait, lookup, methods, node_key


@dataclass(frozen=True)
class Kind:
    zero: str  # copy | add | mul | div | none | linear | norm | attention
    read: str  # none | copy | per-channel | all | linear | norm | attention


GENERIC = Kind("none", "all")
OPAQUE_PER_CHANNEL = Kind("none", "per-channel")

ZERO_PRESERVING = {
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
}
CLAMPS = {torch.clamp, torch.clip, torch.clamp_min, torch.clamp_max, F.hardtanh, F.hardtanh_,
          *methods("clamp", "clamp_", "clamp_min", "clamp_max", "clip")}
ADD = {operator.add, operator.sub, operator.iadd, operator.isub, torch.add, torch.sub, torch.subtract,
       torch.maximum, torch.minimum, torch.where,
       *methods("add", "add_", "sub", "sub_", "maximum", "minimum", "where", "__add__", "__radd__", "__sub__",
                "__rsub__")}
MUL = {operator.mul, operator.imul, torch.mul, torch.multiply, *methods("mul", "mul_", "__mul__", "__rmul__")}
DIV = {operator.truediv, operator.itruediv, torch.div, torch.divide, torch.true_divide,
       *methods("div", "div_", "__truediv__")}
ZERO_REDUCTIONS = {torch.sum, torch.mean, torch.amax, torch.amin, torch.nansum, torch.nanmean,
                   *methods("sum", "mean", "amax", "amin", "nansum", "nanmean")}


def kind_of(node: fx.Node, gm: fx.GraphModule) -> Kind:
    """The zero and read behaviour of ``node`` (placeholders, get_attr and output are handled apart),
    from the liveness kind its channel rule declares."""
    key = node_key(node, gm)
    rule = lookup(key)
    if rule is None:
        return GENERIC
    return _KINDS[rule.liveness](node, gm, key)


def _pad(node: fx.Node, gm: fx.GraphModule, key: Any) -> Kind:
    return Kind("copy" if _zero_padding(node, gm) else "none", "copy")


def _reduction(node: fx.Node, gm: fx.GraphModule, key: Any) -> Kind:
    return Kind("copy" if key in ZERO_REDUCTIONS else "none", "per-channel")


def _fixed(kind: Kind) -> Any:
    return lambda node, gm, key: kind


_KINDS = {
    Liveness.GENERIC: _fixed(GENERIC),
    Liveness.SHAPE_QUERY: _fixed(Kind("none", "none")),
    Liveness.LINEAR: _fixed(Kind("linear", "linear")),
    Liveness.NORM_MODULE: lambda node, gm, key: _norm_kind(gm.get_submodule(str(node.target))),
    Liveness.NORM_ACT_MODULE: lambda node, gm, key: _norm_act_kind(gm.get_submodule(str(node.target))),
    Liveness.NORM_FUNCTIONAL: _fixed(Kind("norm", "norm")),
    Liveness.OPAQUE_PER_CHANNEL: _fixed(OPAQUE_PER_CHANNEL),
    Liveness.MOVEMENT: _fixed(Kind("copy", "copy")),
    Liveness.PAD: _pad,
    Liveness.PER_CHANNEL: _fixed(Kind("copy", "per-channel")),
    Liveness.ELEMENTWISE: lambda node, gm, key: Kind(_elementwise_zero(node, gm, key), "per-channel"),
    Liveness.REDUCTION: _reduction,
    # sums of products: zero where a factor is zero on a kept (free/batch) channel
    Liveness.CONTRACTION: _fixed(Kind("mul", "per-channel")),
    Liveness.ATTENTION: _fixed(Kind("attention", "attention")),  # softmax(q k^T) v: zero where v is
}


def _norm_kind(m: nn.Module) -> Kind:
    """Exact zero analysis of a per-channel norm (``graphprune.liveness.layers.norm_view``)."""
    if has_trait(m, Trait.GROUP_STATS) and m.num_groups == 1:
        return Kind("norm", "all")  # statistics over every channel
    return Kind("norm", "norm")


def _norm_act_kind(m: nn.Module) -> Kind:
    """A norm with a fused activation and dropout is exact when both keep zero."""
    exact = all(_keeps_zero(getattr(m, part, None)) for part in ("drop", "act"))
    return Kind("norm", "norm") if exact else OPAQUE_PER_CHANNEL


def _keeps_zero(m: nn.Module | None) -> bool:
    """A zero-preserving activation / dropout / identity module (or none)."""
    if m is None or type(m) in ZERO_PRESERVING or has_trait(m, Trait.KEEPS_ZERO):
        return True
    return isinstance(m, nn.Hardtanh) and m.min_val <= 0 <= m.max_val


def _elementwise_zero(node: fx.Node, gm: fx.GraphModule, key: Any) -> str:
    if key in ZERO_PRESERVING or has_trait(key, Trait.KEEPS_ZERO):
        return "copy"
    if key in CLAMPS or isinstance(key, type) and issubclass(key, nn.Hardtanh):
        return "copy" if _clamp_keeps_zero(node, gm, key) else "none"
    if key in ADD:
        return "add"
    if key in MUL:
        return "mul"
    if key in DIV:
        return "div"
    return "none"


def _clamp_keeps_zero(node: fx.Node, gm: fx.GraphModule, key: Any) -> bool:
    if isinstance(key, type):
        m = gm.get_submodule(str(node.target))
        lo, hi = m.min_val, m.max_val
    elif key in (F.hardtanh, F.hardtanh_):
        lo, hi = _arg(node, 1, "min_val", -1.0), _arg(node, 2, "max_val", 1.0)
    elif key in (torch.clamp_min, Method("clamp_min")):
        lo, hi = _arg(node, 1, "min", None), None
    elif key in (torch.clamp_max, Method("clamp_max")):
        lo, hi = None, _arg(node, 1, "max", None)
    else:
        lo, hi = _arg(node, 1, "min", None), _arg(node, 2, "max", None)
    ok_lo = lo is None or isinstance(lo, Number) and lo <= 0
    ok_hi = hi is None or isinstance(hi, Number) and hi >= 0
    return ok_lo and ok_hi


def _zero_padding(node: fx.Node, gm: fx.GraphModule) -> bool:
    """Constant padding adds values: only a zero pad value (or reflect/replicate) keeps zeros."""
    if node.op == "call_module":
        return getattr(gm.get_submodule(str(node.target)), "value", 0) == 0
    mode = _arg(node, 2, "mode", "constant")
    return mode != "constant" or _arg(node, 3, "value", None) in (None, 0)


def _arg(node: fx.Node, index: int, name: str, default: Any) -> Any:
    if index < len(node.args):
        return node.args[index]
    return node.kwargs.get(name, default)
