"""How each op treats an all-zero channel (forward) and which input channels it reads (backward).

Ops are classified by the ``Liveness`` kind their channel rule declares (``graphprune.ops.registry``)
and, for element-wise ops, reductions and pads, by the zero kind (``OpSpec.zero``) declared with it in
the op's family module. Anything not declared is generic: it reads every input channel and its result
is never known to be zero. Zero kinds say when output channel c is zero for every input:

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

from dataclasses import dataclass
from typing import Any

import torch.fx as fx
from torch import nn

import graphprune.ops  # noqa: F401  (fills the rule table)
from graphprune.ops.registry import Liveness, OpSpec, Trait, has_trait, lookup, node_key


@dataclass(frozen=True)
class Kind:
    zero: str  # copy | add | mul | div | none | linear | norm | attention
    read: str  # none | copy | per-channel | all | linear | norm | attention


GENERIC = Kind("none", "all")
OPAQUE_PER_CHANNEL = Kind("none", "per-channel")
MOVEMENT = Kind("copy", "copy")  # pure data movement (also opaque functions the channel probe found to be)


def kind_of(node: fx.Node, gm: fx.GraphModule) -> Kind:
    """The zero and read behaviour of ``node`` (placeholders, get_attr and output are handled apart),
    from the liveness kind its channel rule declares."""
    rule = lookup(node_key(node, gm))
    if rule is None:
        return GENERIC
    return _KINDS[rule.liveness](node, gm, rule)


def _zero(rule: OpSpec, node: fx.Node | None, module: nn.Module | None) -> str:
    """The zero kind the op's family declares, resolved for this call where it depends on it."""
    return rule.zero(node, module) if callable(rule.zero) else rule.zero


def _declared_zero(node: fx.Node, gm: fx.GraphModule, rule: OpSpec) -> str:
    module = gm.get_submodule(str(node.target)) if node.op == "call_module" and callable(rule.zero) else None
    return _zero(rule, node, module)


def _fixed(kind: Kind) -> Any:
    return lambda node, gm, rule: kind


_KINDS = {
    Liveness.GENERIC: _fixed(GENERIC),
    Liveness.SHAPE_QUERY: _fixed(Kind("none", "none")),
    Liveness.LINEAR: _fixed(Kind("linear", "linear")),
    Liveness.NORM_MODULE: lambda node, gm, rule: _norm_kind(gm.get_submodule(str(node.target))),
    Liveness.NORM_ACT_MODULE: lambda node, gm, rule: _norm_act_kind(gm.get_submodule(str(node.target))),
    Liveness.NORM_FUNCTIONAL: _fixed(Kind("norm", "norm")),
    Liveness.LAYER_NORM: _fixed(Kind("norm", "all")),  # statistics read every channel of the last dim
    Liveness.OPAQUE_PER_CHANNEL: _fixed(OPAQUE_PER_CHANNEL),
    Liveness.MOVEMENT: _fixed(MOVEMENT),
    Liveness.PAD: lambda node, gm, rule: Kind(_declared_zero(node, gm, rule), "copy"),
    Liveness.PER_CHANNEL: _fixed(Kind("copy", "per-channel")),
    Liveness.ELEMENTWISE: lambda node, gm, rule: Kind(_declared_zero(node, gm, rule), "per-channel"),
    Liveness.REDUCTION: lambda node, gm, rule: Kind(_declared_zero(node, gm, rule), "per-channel"),
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
    """A zero-preserving activation / dropout / identity module (or none), as its family declares."""
    if m is None:
        return True
    rule = lookup(type(m))
    return rule is not None and rule.liveness is Liveness.ELEMENTWISE and _zero(rule, None, m) == "copy"
