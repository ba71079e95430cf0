"""ATen ops of a ``torch.export`` capture whose arguments are those of a torch function graphprune knows.

``torch.export`` (``graphprune.capture``) gives an fx graph of ATen overloads (``aten.linear.default``,
``aten.add_.Tensor``...). Most take exactly the arguments, in the same order, of a functional key the
families already declare (``aten.linear`` is ``F.linear``'s signature, ``aten.cat`` ``torch.cat``'s), so
their whole declaration is that key's: channel rule, rewrite of baked sizes, liveness and zero kinds, shape
formula, cost and traits. This module is that one table of twins, so the ATen op set graphprune knows is
read in one place. ATen ops whose arguments differ from their functional twin, or whose family rule
indexes a table by target (convolutions, batch norm), are declared in their family module next to the
functional rule they share (``conv.py``, ``norm.py``): what is known about convs and norms stays there.

In-place overloads (``relu_``, ``add_``, ``hardswish_``) get their out-of-place twin's rule, as the fx
capture's ``F.relu(inplace=True)`` / ``operator.iadd`` do: in the captured graph the mutated tensor's
later readers read the op's result node, so channels flow through it as through a copy.

An ATen op in no table is unknown: the analysis freezes the channels it touches and the report names it
(``aten.roll.default``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from graphprune.ops import concat, elementwise, linear, permute, pooling, reduction, reshape  # noqa: F401 (twins first)
from graphprune.ops.registry import RULE_FIELDS, Method, alias

aten = torch.ops.aten

TWIN_FIELDS = (*RULE_FIELDS, "shape", "cost", "traits", "input_weight_dim")

# ATen overload -> the functional key with the same arguments, grouped by family.
ATEN_TWINS = {
    # linear
    aten.linear.default: F.linear,
    # element-wise
    aten.relu.default: F.relu, aten.relu_.default: F.relu,
    aten.hardswish.default: F.hardswish, aten.hardswish_.default: F.hardswish,
    aten.hardsigmoid.default: F.hardsigmoid, aten.hardsigmoid_.default: F.hardsigmoid,
    aten.hardtanh.default: F.hardtanh, aten.hardtanh_.default: F.hardtanh,
    aten.silu.default: F.silu, aten.silu_.default: F.silu,
    aten.gelu.default: F.gelu, aten.sigmoid.default: torch.sigmoid, aten.tanh.default: torch.tanh,
    aten.dropout.default: F.dropout, aten.dropout_.default: F.dropout,
    aten.clone.default: torch.clone, aten.contiguous.default: Method("contiguous"),
    aten.add.Tensor: torch.add, aten.add_.Tensor: torch.add,
    aten.sub.Tensor: torch.sub, aten.sub_.Tensor: torch.sub,
    aten.mul.Tensor: torch.mul, aten.mul_.Tensor: torch.mul,
    aten.div.Tensor: torch.div, aten.div_.Tensor: torch.div,
    # pooling
    aten.max_pool2d.default: F.max_pool2d, aten.avg_pool2d.default: F.avg_pool2d,
    aten.adaptive_avg_pool2d.default: F.adaptive_avg_pool2d,
    # reductions
    aten.mean.dim: torch.mean, aten.sum.dim_IntList: torch.sum,
    # data movement
    aten.flatten.using_ints: torch.flatten,
    aten.view.default: torch.reshape, aten.reshape.default: torch.reshape,
    aten.cat.default: torch.cat, aten.chunk.default: torch.chunk, aten.split.Tensor: torch.split,
    aten.transpose.int: torch.transpose, aten.permute.default: torch.permute,
}

for _aten_key, _twin in ATEN_TWINS.items():
    alias([_aten_key], like=_twin, fields=TWIN_FIELDS)
