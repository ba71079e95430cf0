"""Contractions and attention: matmul/bmm/einsum/scaled_dot_product_attention.

A contracted dim couples its two operands index by index (q's head_dim with k's head_dim); batch
dims behave element-wise; free dims pass their channels to the output. Exactness holds because a
removed contracted channel is zero in at least one operand of the masked model (it comes straight from
a zeroed projection).
"""

from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F

from graphprune.channels.context import RuleContext
from graphprune.channels.elements import Ids
from graphprune.channels.layout import EMPTY, Layout
from graphprune.ops.registry import Liveness, methods, register


def _batch_dims(ctx: RuleContext, a: object, b: object, out_rank: int, free: int) -> dict[int, Ids]:
    """Broadcast batch dims of two operands whose last ``free`` dims are matrix dims."""
    dims = {}
    for d in range(out_rank - free):
        aligned = []
        for op in (a, b):
            info, lay = ctx.info(op), ctx.layout(op)
            k = d - (out_rank - info.ndim)
            if k >= 0 and info.shape[k] > 1:
                aligned.append(lay.get(k))
        ids = ctx.couple_all(aligned, "batch dim of a contraction against an untracked operand")
        if ids is not None:
            dims[d] = ids
    return dims


@register([torch.matmul, operator.matmul, torch.bmm, *methods("matmul", "bmm", "__matmul__")],
          liveness=Liveness.CONTRACTION)
def matmul(ctx: RuleContext) -> Layout:
    a, b = ctx.arg(0), ctx.arg(1)
    ia, ib, out = ctx.info(a), ctx.info(b), ctx.out
    la, lb = ctx.layout(a), ctx.layout(b)
    if ia.ndim < 2 or ib.ndim < 2:
        ctx.freeze_inputs("matmul with a vector operand")
        return EMPTY
    ctx.couple(la.get(ia.ndim - 1), lb.get(ib.ndim - 2), "contracted against an untracked operand")
    dims = _batch_dims(ctx, a, b, out.ndim, 2)
    if la.get(ia.ndim - 2) is not None:
        dims[out.ndim - 2] = la.get(ia.ndim - 2)
    if lb.get(ib.ndim - 1) is not None:
        dims[out.ndim - 1] = lb.get(ib.ndim - 1)
    return Layout(dims)


@register([torch.einsum], liveness=Liveness.CONTRACTION)
def einsum(ctx: RuleContext) -> Layout:
    equation = ctx.value(ctx.arg(0)).replace(" ", "")
    operands = list(ctx.node.args[1:])
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = list(operands[0])
    if "..." in equation or "->" not in equation:
        ctx.freeze_inputs("einsum with ellipsis or implicit output")
        return EMPTY
    lhs, rhs = equation.split("->")
    letters: dict[str, list[Ids | None]] = {}
    for spec, op in zip(lhs.split(","), operands):
        lay, info = ctx.layout(op), ctx.info(op)
        for d, ch in enumerate(spec):
            if info.shape[d] > 1:
                letters.setdefault(ch, []).append(lay.get(d))
    resolved: dict[str, Ids] = {}
    for ch, ids in letters.items():
        coupled = ctx.couple_all(ids, "einsum index shared with an untracked operand")
        if coupled is not None:
            resolved[ch] = coupled
    return Layout({d: resolved[ch] for d, ch in enumerate(rhs) if ch in resolved})


def _rewrite_sdpa(node, kept) -> None:
    """The default scale is 1/sqrt(E) of the *current* head dim; pin the dense model's scale so the
    pruned attention computes what the masked dense one does."""
    q = node.args[0] if node.args else node.kwargs["query"]
    old, new = kept.old_shape(q)[-1], kept.new_shape(q)[-1]
    if old != new and node.kwargs.get("scale") is None and len(node.args) < 7:
        node.kwargs = {**node.kwargs, "scale": 1.0 / math.sqrt(old)}


@register([F.scaled_dot_product_attention], rewrite=_rewrite_sdpa, liveness=Liveness.ATTENTION)
def scaled_dot_product_attention(ctx: RuleContext) -> Layout:
    q, k, v = ctx.arg(0, "query"), ctx.arg(1, "key"), ctx.arg(2, "value")
    iq, ik, iv = ctx.info(q), ctx.info(k), ctx.info(v)
    lq, lk, lv = ctx.layout(q), ctx.layout(k), ctx.layout(v)
    ctx.couple(lq.get(iq.ndim - 1), lk.get(ik.ndim - 1), "attention head dim against an untracked operand")
    ctx.freeze(lk.get(ik.ndim - 2), "attention key positions")
    ctx.freeze(lv.get(iv.ndim - 2), "attention value positions")
    ctx.freeze(lq.get(iq.ndim - 2), "attention query positions")
    out = ctx.out
    dims = {}
    for d in range(out.ndim - 2):
        ids = ctx.couple_all([lay.get(d) for lay in (lq, lk, lv)], "attention batch dim against an untracked operand")
        if ids is not None:
            dims[d] = ids
    if lv.get(iv.ndim - 1) is not None:
        dims[out.ndim - 1] = lv.get(iv.ndim - 1)
    return Layout(dims)

