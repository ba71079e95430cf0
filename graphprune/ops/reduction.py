"""Reductions and softmax-like normalisations.

Reducing over a non-channel dim (global pooling by ``mean((2, 3))``, a sum over tokens) keeps the
channels. Over a channel dim, an index-valued result (argmax, all, prod) freezes the channels; a
statistic (mean, var, amax, softmax) lets them go but the removal is marked inexact; a sum or p-norm
gives the same with a channel zeroed or removed, so removal through it is exact and nothing is marked.
A mean, variance or standard deviation declares ``statistics``, the rewrite that keeps it over the
original width (``graphprune.ops.full_width``): with ``statistics = "exact"`` a removal through it whose
removed channels are zero at its input is exact, and is not reported (``graphprune.statistics``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from graphprune.channels.context import RuleContext, empty_like
from graphprune.channels.layout import Layout
from graphprune.ops import full_width
from graphprune.ops.elementwise import same_layout
from graphprune.ops.registry import Liveness, Method, declare, formula, methods, register
from graphprune.shapes.registry import Call, Meta, TensorInfo, dim_index, floating, module_input

REDUCTIONS = [torch.sum, torch.mean, torch.amax, torch.amin, torch.max, torch.min, torch.std, torch.var,
              torch.norm, torch.logsumexp, torch.prod, torch.all, torch.any, torch.argmax, torch.argmin,
              torch.linalg.vector_norm, torch.nansum, torch.nanmean, torch.std_mean, torch.var_mean,
              *methods("sum", "mean", "amax", "amin", "max", "min", "std", "var", "norm", "logsumexp",
                       "prod", "all", "any", "argmax", "argmin", "nansum", "nanmean"),
              full_width.var, full_width.std]


def _reduced_dims(ctx: RuleContext, rank: int) -> list[int] | None:
    dim = ctx.value(ctx.arg(1, "dim", None))
    if ctx.node.target in (torch.norm, Method("norm"), torch.linalg.vector_norm):  # (input, p/ord, dim)
        dim = ctx.value(ctx.node.kwargs.get("dim", ctx.arg(2, "dim", None)))
    if dim is None or isinstance(dim, TensorInfo):
        return None
    dims = [dim] if isinstance(dim, int) else list(dim)
    return [d % rank for d in dims] if dims else None


_INDEX_VALUED = {"argmax", "argmin", "all", "any", "prod"}
# A removed channel is a zeroed one in the dense model (masked equivalence), and these give the same
# result whether zeros are present or absent: removal through them is exact, nothing to report.
_ZERO_INVARIANT = {"sum", "nansum", "norm", "linalg_vector_norm"}


def _zero_invariant(ctx: RuleContext, name: str) -> bool:
    if name not in _ZERO_INVARIANT:
        return False
    if name in ("norm", "linalg_vector_norm"):  # p-norms with p >= 0 (2, 1, inf, 'fro', 0 = count non-zeros)
        p = ctx.value(ctx.node.kwargs.get("p", ctx.node.kwargs.get("ord", ctx.arg(1, None, 2)
                                                                   if name == "linalg_vector_norm" else 2)))
        if ctx.node.target in (torch.norm, Method("norm")):
            p = ctx.value(ctx.node.kwargs.get("p", ctx.arg(1, "p", "fro")))
        return p is None or p == "fro" or isinstance(p, (int, float)) and p >= 0
    return True


@register(REDUCTIONS, liveness=Liveness.REDUCTION)
def reduction(ctx: RuleContext) -> object:
    x = ctx.arg(0, "input")
    lay, info = ctx.layout(x), ctx.info(x)
    if not isinstance(lay, Layout) or info is None:
        return empty_like(ctx.out)
    dims = _reduced_dims(ctx, info.ndim)
    reduced = list(range(info.ndim)) if dims is None else dims
    target = ctx.node.target
    name = target if isinstance(target, str) else getattr(target, "__name__", "?")
    for d in reduced:
        ids = lay.get(d)
        if ids is None:
            continue
        if name in _INDEX_VALUED:  # results are channel positions: removal changes their meaning
            ctx.freeze(ids, f"{name} over a channel dim")
        elif not _zero_invariant(ctx, name):  # a statistic over channels, like LayerNorm: removal changes it
            ctx.table.mark_inexact(ids, f"{name} over a channel dim", ctx.name)
    keepdim = bool(ctx.value(ctx.node.kwargs.get("keepdim", ctx.arg(_keepdim_position(ctx, name), "keepdim", False))))
    kept = {}
    for d, ids in lay.dims.items():
        if d in reduced:
            continue
        new = d if keepdim else d - sum(1 for r in reduced if r < d)
        kept[new] = ids
    layout = Layout(kept)
    out = ctx.out
    if isinstance(out, tuple):  # (values, indices)
        return tuple(layout for _ in out)
    return layout if isinstance(out, TensorInfo) else None



def _keepdim_position(ctx: RuleContext, name: str) -> int:
    """Where ``keepdim`` sits positionally: third, except in the legacy variance signature
    ``var(input, dim, unbiased, keepdim)`` (and std's), whose third is ``unbiased``."""
    legacy = name in ("var", "std", "var_mean", "std_mean") and isinstance(ctx.value(ctx.arg(2)), bool)
    return 3 if legacy and len(ctx.node.args) > 3 else 2


# Sums, means and extrema of an all-zero channel are zero (unused-path removal: ``OpSpec.zero``).
declare([torch.sum, torch.mean, torch.amax, torch.amin, torch.nansum, torch.nanmean,
         *methods("sum", "mean", "amax", "amin", "nansum", "nanmean")], zero="copy")

# Statistics over the original width (``statistics = "exact"``): a mean becomes sum / C0, a variance its
# full-width kernel. Other statistics over channels (amax, logsumexp, nanmean, var_mean) stay inexact.
declare([torch.mean, Method("mean")], statistics=full_width.scaled_mean)
for _kernel, _keys in ((full_width.var, [torch.var, Method("var")]), (full_width.std, [torch.std, Method("std")])):
    declare([*_keys, _kernel], statistics=full_width.variance_call(_kernel))

SOFTMAXES = [F.softmax, F.log_softmax, torch.softmax, torch.log_softmax, F.softmin, torch.cumsum,
             torch.cumprod, F.normalize, *methods("softmax", "log_softmax", "cumsum", "cumprod"),
             nn.Softmax, nn.LogSoftmax, nn.Softmin, nn.Softmax2d]


@register(SOFTMAXES, liveness=Liveness.ELEMENTWISE)
def softmax(ctx: RuleContext) -> Layout:
    x = ctx.arg(0, "input")
    info = ctx.info(x)
    if ctx.node.op == "call_module":
        dim = getattr(ctx.module, "dim", None)
        dim = -3 if isinstance(ctx.module, nn.Softmax2d) else dim
    elif ctx.node.target is F.normalize:
        dim = ctx.value(ctx.arg(2, "dim", 1))
    else:
        dim = ctx.value(ctx.arg(1, "dim", None))
    lay = ctx.layout(x)
    if dim is None:
        ctx.freeze_inputs("softmax over an implicit dim")
    elif _zero_invariant_normalisation(ctx):
        pass  # zeroed channels add nothing to a p-norm or a running sum: exact
    else:
        ctx.table.mark_inexact(lay.get(dim % info.ndim) if lay.get(dim % info.ndim) is not None else [],
                               "normalisation across a channel dim (softmax/normalize/cumsum)", ctx.name)
    return same_layout(ctx, x)


def _zero_invariant_normalisation(ctx: RuleContext) -> bool:
    target = ctx.node.target
    if target is F.normalize:
        p = ctx.value(ctx.node.kwargs.get("p", ctx.arg(1, "p", 2.0)))
        return isinstance(p, (int, float)) and p > 0
    return target in (torch.cumsum, Method("cumsum"))


# ---- shapes (``graphprune.shapes.registry``)

@formula([torch.mean, torch.sum, *methods("mean", "sum")])
def reduce_shape(call: Call) -> Meta | None:
    x = floating(call.args[0]) if call.args else None
    if x is None or not call.only("dim", "keepdim", max_args=3):
        return None
    dim, keepdim = call.arg(1, "dim"), call.arg(2, "keepdim", False)
    if not isinstance(keepdim, bool):
        return None
    if dim is None:
        dims = set(range(x.ndim))
    else:
        listed = dim if isinstance(dim, (tuple, list)) else (dim,)
        wrapped = [dim_index(d, x.ndim) for d in listed]
        if not listed or None in wrapped or len(set(wrapped)) != len(wrapped):
            return None
        dims = set(wrapped)
    shape = tuple(1 if i in dims else s for i, s in enumerate(x.shape) if keepdim or i not in dims)
    return Meta(shape, x.dtype, x.device)


@formula([torch.softmax, F.softmax, torch.log_softmax, F.log_softmax, *methods("softmax", "log_softmax")])
def softmax_shape(call: Call) -> Meta | None:
    x = floating(call.args[0]) if call.args else None
    dim = call.arg(1, "dim")
    if x is None or call.arg(3, "dtype") is not None or "dtype" in call.kwargs or len(call.args) > 3:
        return None
    if dim is not None and dim_index(dim, x.ndim) is None:
        return None
    return x


@formula([nn.Softmax, nn.LogSoftmax])
def softmax_module_shape(call: Call) -> Meta | None:
    x = module_input(call)
    return None if x is None else softmax_shape(Call((call.args[0], call.module.dim), {}))
