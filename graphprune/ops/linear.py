"""Dense layers: linear and embedding, as modules and as functionals over loose weights.

A linear's weight rows are new output channels (features of the last dim); its weight columns are the
input features, unified with whatever produced them. A bilinear layer ``x1^T W x2 + b`` is a linear
with two inputs: weight dim 0 is its output channels, dims 1 and 2 read the last dim of ``x1`` and
``x2``. An embedding's table columns are its output channels; its indices carry none.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from graphprune.channels.context import RuleContext
from graphprune.channels.elements import Ids
from graphprune.channels.layout import EMPTY, Layout
from graphprune.ops.registry import Liveness, Trait, declare, formula, register, resizer
from graphprune.shapes.registry import Call, Meta, TensorInfo, floating, module_input, numel, spec

# Traits: what consumers (scoring, masks, ADMM, costs, selectors, liveness) need to know about the weights.
declare([nn.Linear, F.linear], traits={Trait.WEIGHT_LAYER})
declare([nn.Linear], traits={Trait.FILTER_ROWS}, input_weight_dim=1)
# A bilinear's MACs are positions x weight numel / out, as a linear's (costs), and a batch norm after it
# folds into its rows (fuse); it has no masked twin, so it is not a FILTER_ROWS layer (scores, masks).
declare([nn.Bilinear], traits={Trait.WEIGHT_LAYER}, input_weight_dim=1)


def _linear_layout(ctx: RuleContext, x: object, w_out: Ids | None, w_in: Ids | None,
                   bias: Ids | None) -> Layout:
    lay, out = ctx.layout(x), ctx.out
    assert isinstance(out, TensorInfo)
    last = out.ndim - 1
    dims = {d: ids for d, ids in (lay.dims.items() if isinstance(lay, Layout) else ()) if d != last}
    in_ids = lay.get(last) if isinstance(lay, Layout) else None
    if in_ids is not None and w_in is not None:
        ctx.table.unify(in_ids, w_in)
    elif in_ids is not None:
        ctx.freeze(in_ids, "linear weight is not a tracked parameter")
    else:
        ctx.freeze(w_in, "linear input features are not tracked")
    if bias is not None and w_out is not None:
        ctx.table.unify(bias, w_out)
    if w_out is not None:
        dims[last] = w_out
    return Layout(dims)


@register([nn.Linear], liveness=Liveness.LINEAR)
def linear_module(ctx: RuleContext) -> Layout:
    x = ctx.arg(0, "input")
    lay, info = ctx.layout(x), ctx.info(x)
    in_ids = lay.get(info.ndim - 1) if isinstance(lay, Layout) and info is not None else None
    w_out = ctx.param("weight", 0)
    return _linear_layout(ctx, x, w_out, ctx.bind_param("weight", 1, in_ids), ctx.bind_param("bias", 0, w_out))


@register([F.linear], liveness=Liveness.LINEAR)
def linear_functional(ctx: RuleContext) -> Layout:
    wl = ctx.layout(ctx.arg(1, "weight"))
    b = ctx.arg(2, "bias")
    bl = ctx.layout(b) if b is not None else EMPTY
    wl = wl if isinstance(wl, Layout) else EMPTY
    return _linear_layout(ctx, ctx.arg(0, "input"), wl.get(0), wl.get(1),
                          bl.get(0) if isinstance(bl, Layout) else None)


@register([nn.Bilinear], liveness=Liveness.GENERIC)  # every output reads every input channel
def bilinear_module(ctx: RuleContext) -> Layout:
    out = ctx.out
    assert isinstance(out, TensorInfo)
    w_out = ctx.param("weight", 0)
    ctx.bind_param("bias", 0, w_out)
    for index, name, dim in ((0, "input1", 1), (1, "input2", 2)):
        x = ctx.arg(index, name)
        lay, info = ctx.layout(x), ctx.info(x)
        if not isinstance(lay, Layout) or info is None:
            ctx.freeze(ctx.param("weight", dim), "bilinear input features are not tracked")
            continue
        for d, ids in lay.dims.items():
            if d != info.ndim - 1:
                ctx.freeze(ids, "batch dim of a bilinear input")
        ctx.bind_param("weight", dim, lay.get(info.ndim - 1))
    return Layout({out.ndim - 1: w_out}) if w_out is not None else EMPTY


@register([nn.Embedding])
def embedding_module(ctx: RuleContext) -> Layout:
    out = ctx.out
    ctx.freeze_inputs("embedding indices")
    w = ctx.param("weight", 1)
    return Layout({out.ndim - 1: w}) if w is not None else EMPTY


@register([F.embedding], liveness=Liveness.MOVEMENT)  # each output value is a value of the table's column
def embedding_functional(ctx: RuleContext) -> Layout:
    wl = ctx.layout(ctx.arg(1, "weight"))
    w = wl.get(1) if isinstance(wl, Layout) else None
    return Layout({ctx.out.ndim - 1: w}) if w is not None else EMPTY


# ---- shapes: result shape and MACs without running the kernel (``graphprune.shapes.registry``)


@formula([nn.Linear, nn.modules.linear.NonDynamicallyQuantizableLinear])
def linear_module_shape(call: Call) -> Meta | None:
    x = module_input(call)
    m = call.module
    return None if x is None else linear_shape(call, x, spec(m.weight), spec(m.bias), m.bias is not None)


@formula([F.linear])
def linear_functional_shape(call: Call) -> Meta | None:
    x, w = floating(call.arg(0, "input")), spec(call.arg(1, "weight"))
    bias = spec(call.arg(2, "bias"))
    if x is None or w is None or not call.only("input", "weight", "bias", max_args=3):
        return None
    return linear_shape(call, x, w, bias, call.arg(2, "bias") is not None)


def linear_shape(call: Call, x: Meta, w: Meta, bias: Meta | None, has_bias: bool) -> Meta | None:
    """``x @ w.T + b``; counts MACs as torch's FLOP counter does (rows x out x in)."""
    if w.ndim != 2 or x.ndim == 0 or x.shape[-1] != w.shape[1] or w.dtype != x.dtype or w.device != x.device:
        return None
    if has_bias and (bias is None or bias.shape != (w.shape[0],) or bias.dtype != x.dtype):
        return None
    call.macs += (numel(x.shape) // max(x.shape[-1], 1)) * w.shape[0] * w.shape[1]
    return Meta((*x.shape[:-1], w.shape[0]), x.dtype, x.device)


@formula([nn.Bilinear])
def bilinear_shape(call: Call) -> Meta | None:
    """``(*, in1) x (*, in2) -> (*, out)``; MACs = rows x out x in1 x in2 (torch's counter has no entry)."""
    m = call.module
    if len(call.args) != 2 or call.kwargs:
        return None
    a, b, w = floating(call.args[0]), floating(call.args[1]), spec(m.weight)
    if a is None or b is None or a.ndim == 0 or a.shape[:-1] != b.shape[:-1]:
        return None
    if w.shape[1:] != (a.shape[-1], b.shape[-1]):
        return None
    if a.dtype != b.dtype or a.dtype != w.dtype or (m.bias is not None and tuple(m.bias.shape) != (w.shape[0],)):
        return None
    call.macs += numel(a.shape[:-1]) * numel(w.shape)
    return Meta((*a.shape[:-1], w.shape[0]), a.dtype, a.device)


# ---- resize: size attributes follow the shrunk weight


@resizer([nn.Linear])
def _resize_linear(m: nn.Linear, new_in: int | None) -> None:
    m.out_features, m.in_features = m.weight.shape


@resizer([nn.Embedding])
def _resize_embedding(m: nn.Embedding, new_in: int | None) -> None:
    m.num_embeddings, m.embedding_dim = m.weight.shape


@resizer([nn.Bilinear])
def _resize_bilinear(m: nn.Bilinear, new_in: int | None) -> None:
    m.out_features, m.in1_features, m.in2_features = m.weight.shape
