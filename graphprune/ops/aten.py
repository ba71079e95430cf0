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

import operator

import torch
import torch.fx as fx
import torch.nn.functional as F

from graphprune.ops import (  # noqa: F401 (twins first)
    attention,
    concat,
    elementwise,
    expand,
    linear,
    norm,
    pad,
    permute,
    pooling,
    reduction,
    reshape,
)
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
    aten.var.correction: torch.var, aten.std.correction: torch.std,
    # data movement
    aten.flatten.using_ints: torch.flatten,
    aten.view.default: torch.reshape, aten.reshape.default: torch.reshape, aten.unflatten.int: torch.unflatten,
    aten.cat.default: torch.cat, aten.chunk.default: torch.chunk, aten.split.Tensor: torch.split,
    aten.split_with_sizes.default: torch.split,
    aten.transpose.int: torch.transpose, aten.permute.default: torch.permute,
    aten.unsqueeze.default: torch.unsqueeze, aten.squeeze.dim: torch.squeeze, aten.squeeze.dims: torch.squeeze,
    aten.expand.default: Method("expand"), aten.alias.default: torch.clone,
    aten.to.dtype: Method("to"), aten.to.device: Method("to"), aten.to.dtype_layout: Method("to"),
    aten._to_copy.default: Method("to"),
    # element-wise, more
    aten.cos.default: torch.cos, aten.sin.default: torch.sin, aten.rsqrt.default: torch.rsqrt,
    aten.sqrt.default: torch.sqrt, aten.exp.default: torch.exp, aten.log.default: torch.log,
    aten.neg.default: torch.neg, aten.abs.default: torch.abs, aten.erf.default: torch.erf,
    aten.reciprocal.default: torch.reciprocal, aten.pow.Tensor_Scalar: torch.pow, aten.pow.Tensor_Tensor: torch.pow,
    aten.tanh_.default: torch.tanh, aten.gelu_.default: F.gelu,
    aten.clamp.default: torch.clamp, aten.clamp.Tensor: torch.clamp,
    aten.minimum.default: torch.minimum, aten.maximum.default: torch.maximum, aten.min.other: torch.minimum,
    aten.max.other: torch.maximum, aten.where.self: torch.where, aten.where.ScalarOther: torch.where,
    aten.masked_fill.Scalar: torch.masked_fill, aten.masked_fill_.Scalar: torch.masked_fill,
    aten.masked_fill.Tensor: torch.masked_fill,
    aten.eq.Tensor: torch.eq, aten.eq.Scalar: torch.eq, aten.ne.Scalar: torch.ne, aten.ne.Tensor: torch.ne,
    aten.lt.Scalar: torch.lt, aten.lt.Tensor: torch.lt, aten.le.Tensor: torch.le, aten.le.Scalar: torch.le,
    aten.gt.Scalar: torch.gt, aten.gt.Tensor: torch.gt, aten.ge.Scalar: torch.ge, aten.ge.Tensor: torch.ge,
    aten.softmax.int: F.softmax, aten.cumsum.default: torch.cumsum,
    # attention, padding, pooling (norms: norm.ATEN_TWINS)
    aten.scaled_dot_product_attention.default: F.scaled_dot_product_attention,
    aten.pad.default: F.pad, aten.constant_pad_nd.default: torch.constant_pad_nd,
    aten.adaptive_avg_pool1d.default: F.adaptive_avg_pool1d,
    aten.matmul.default: torch.matmul, aten.bmm.default: torch.bmm, aten.mm.default: torch.matmul,
}

ATEN_TWINS.update(norm.ATEN_TWINS)  # the norm family declares its own (what is known about norms stays there)

for _aten_key, _twin in ATEN_TWINS.items():
    alias([_aten_key], like=_twin, fields=TWIN_FIELDS)


# ---- lowerings: ATen ops whose arguments are not a known torch function's, rewritten at capture
#
# Why rewrite instead of declaring a rule per overload: ``aten.slice.Tensor(x, dim, start, end)`` is
# ``x[:, start:end]`` and ``aten.embedding(weight, indices)`` is ``F.embedding(indices, weight)``; the
# families already know those calls exactly (slices re-based after removal, embedding columns), so the
# capture turns each such node into the torch call it means (``graphprune.capture``), and the table of
# what those calls do stays the families'. A lowering ``(graph, node)`` adds the calls that replace the
# node (``lower`` inserts them before it) and returns the last, or None to keep the node as it is (then
# its rule, or its absence, decides).

Lowered = fx.Node | None


def _arg(node: fx.Node, i: int, name: str, default: object) -> object:
    return node.args[i] if len(node.args) > i else node.kwargs.get(name, default)


def _rank(x: object) -> int | None:
    val = x.meta.get("val") if isinstance(x, fx.Node) else None
    return val.dim() if isinstance(val, torch.Tensor) else None


def _index_before(x: fx.Node, dim: int, item: object) -> tuple | None:
    """The index ``x[:, ..., item]`` with ``item`` at ``dim`` (a negative dim needs ``x``'s rank)."""
    if dim < 0:
        rank = _rank(x)
        if rank is None:
            return None
        dim += rank
    return (*([slice(None)] * dim), item)


def _lower_slice(graph: fx.Graph, node: fx.Node) -> Lowered:
    x, dim = node.args[0], _arg(node, 1, "dim", 0)
    start, end, step = _arg(node, 2, "start", None), _arg(node, 3, "end", None), _arg(node, 4, "step", 1)
    index = _index_before(x, dim, slice(start, end, None if step == 1 else step))
    return None if index is None else graph.call_function(operator.getitem, (x, index))


def _lower_select(graph: fx.Graph, node: fx.Node) -> Lowered:
    index = _index_before(node.args[0], node.args[1], node.args[2])
    return None if index is None else graph.call_function(operator.getitem, (node.args[0], index))


def _lower_index(graph: fx.Graph, node: fx.Node) -> Lowered:
    items = tuple(slice(None) if i is None else i for i in node.args[1])
    return graph.call_function(operator.getitem, (node.args[0], items))


def _lower_embedding(graph: fx.Graph, node: fx.Node) -> Lowered:
    weight, indices = node.args[:2]
    padding_idx = _arg(node, 2, "padding_idx", -1)
    kwargs = {} if padding_idx in (-1, None) else {"padding_idx": padding_idx}
    return graph.call_function(F.embedding, (indices, weight), kwargs)


def _lower_addmm(graph: fx.Graph, node: fx.Node) -> Lowered:
    """``addmm(bias, a, b)`` (GPT-2's ``Conv1D``) is ``bias + a @ b`` when beta = alpha = 1; the same for
    ``torch.addmm`` and ``bias.addmm(a, b)`` in an fx graph (the method's self is its first argument)."""
    if _arg(node, 3, "beta", 1) != 1 or _arg(node, 4, "alpha", 1) != 1:
        return None
    bias, a, b = (_arg(node, i, name, None) for i, name in enumerate(("input", "mat1", "mat2")))
    return graph.call_function(torch.add, (bias, graph.call_function(torch.matmul, (a, b))))


def _lower_rsub(graph: fx.Graph, node: fx.Node) -> Lowered:
    """``rsub(x, other, alpha)`` is ``other - alpha * x``."""
    if _arg(node, 2, "alpha", 1) != 1:
        return None
    return graph.call_function(operator.sub, (node.args[1], node.args[0]))


ATEN_LOWERINGS = {
    **norm.ATEN_LOWERINGS, aten.rsub.Scalar: _lower_rsub,
    aten.slice.Tensor: _lower_slice, aten.select.int: _lower_select, aten.index.Tensor: _lower_index,
    aten.embedding.default: _lower_embedding, aten.addmm.default: _lower_addmm,
}

# The same meanings where an fx trace records the torch call itself (functions, then methods by name).
TORCH_LOWERINGS = {torch.addmm: _lower_addmm}
METHOD_LOWERINGS = {"addmm": _lower_addmm}

# Ops that only check what torch.export already guaranteed (metadata, sizes): dropped from the graph.
ATEN_ASSERTS = (aten._assert_tensor_metadata.default, aten._assert_scalar.default,
                aten.sym_constrain_range_for_size.default)


def lower(graph: fx.Graph) -> None:
    """Rewrite every node the lowering tables know into the calls it means; drop unused assertion nodes."""
    for node in list(graph.nodes):
        if node.op not in ("call_function", "call_method"):
            continue
        if node.op == "call_function" and node.target in ATEN_ASSERTS and not node.users:
            graph.erase_node(node)
            continue
        lowering = (METHOD_LOWERINGS.get(str(node.target)) if node.op == "call_method"
                    else ATEN_LOWERINGS.get(node.target) or TORCH_LOWERINGS.get(node.target))
        if lowering is None:
            continue
        with graph.inserting_before(node):
            new = lowering(graph, node)
        if new is None:
            continue
        new.meta = dict(node.meta)
        node.replace_all_uses_with(new)
        graph.erase_node(node)
