"""Contractions and attention: matmul/bmm/einsum/scaled_dot_product_attention.

A contracted dim couples its two operands index by index (q's head_dim with k's head_dim); batch
dims behave element-wise; free dims pass their channels to the output. Exactness holds because a
removed contracted channel is zero in at least one operand of the masked model (it comes straight from
a zeroed projection).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import torch
import torch.fx as fx
import torch.nn.functional as F

from graphprune.channels.context import RuleContext
from graphprune.channels.elements import Ids
from graphprune.channels.layout import EMPTY, Layout
from graphprune.ops.registry import Liveness, declare, formula, methods, register
from graphprune.shapes.registry import Call, Meta, TensorInfo, broadcast, floating, numel, spec


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


MATMULS = [torch.matmul, operator.matmul, torch.bmm, *methods("matmul", "bmm", "__matmul__")]


@register(MATMULS, liveness=Liveness.CONTRACTION)
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
    for subscripts, op in zip(lhs.split(","), operands):
        lay, info = ctx.layout(op), ctx.info(op)
        for d, ch in enumerate(subscripts):
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


def _attention_mask(ctx: RuleContext, score_ndim: int) -> tuple[object, Layout, int]:
    """The additive/boolean mask, broadcast against the scores ``(*batch, L, S)``: its batch dims (a
    per-head bias's heads) couple with q/k/v's, its query and key position dims are frozen. Ignoring it
    would let a channel of the mask (T5's relative-position embedding columns, one per head) be removed
    while the scores keep every head."""
    mask = ctx.arg(3, "attn_mask")
    info = ctx.info(mask) if isinstance(mask, fx.Node) else None
    if info is None:
        return None, Layout({}), 0
    lm, shift = ctx.layout(mask), score_ndim - info.ndim
    for j in range(info.ndim):
        if j + shift >= score_ndim - 2:
            ctx.freeze(lm.get(j), "attention mask positions")
    return mask, lm, shift


@register([F.scaled_dot_product_attention], rewrite=_rewrite_sdpa, liveness=Liveness.ATTENTION)
def scaled_dot_product_attention(ctx: RuleContext) -> Layout:
    q, k, v = ctx.arg(0, "query"), ctx.arg(1, "key"), ctx.arg(2, "value")
    iq, ik, iv = ctx.info(q), ctx.info(k), ctx.info(v)
    lq, lk, lv = ctx.layout(q), ctx.layout(k), ctx.layout(v)
    ctx.couple(lq.get(iq.ndim - 1), lk.get(ik.ndim - 1), "attention head dim against an untracked operand")
    ctx.freeze(lk.get(ik.ndim - 2), "attention key positions")
    ctx.freeze(lv.get(iv.ndim - 2), "attention value positions")
    ctx.freeze(lq.get(iq.ndim - 2), "attention query positions")
    mask, lm, shift = _attention_mask(ctx, iq.ndim)
    out = ctx.out
    dims = {}
    for d in range(out.ndim - 2):
        broadcast_mask = mask is None or d < shift or ctx.info(mask).shape[d - shift] == 1
        batch = [lay.get(d) for lay in (lq, lk, lv)] + ([] if broadcast_mask else [lm.get(d - shift)])
        ids = ctx.couple_all(batch, "attention batch dim against an untracked operand")
        if ids is not None:
            dims[d] = ids
    if lv.get(iv.ndim - 1) is not None:
        dims[out.ndim - 1] = lv.get(iv.ndim - 1)
    return Layout(dims)


# ---- shapes (``graphprune.shapes.registry``)

@formula([torch.matmul, operator.matmul, *methods("matmul")])
def matmul_shape(call: Call) -> Meta | None:
    """Batched matrix products of operands with >= 2 dims (1-d operands decline); MACs as torch counts
    the mm/bmm it lowers to."""
    if len(call.args) != 2 or call.kwargs:
        return None
    a, b = floating(call.args[0]), floating(call.args[1])
    if a is None or b is None or a.ndim < 2 or b.ndim < 2 or a.dtype != b.dtype or a.device != b.device:
        return None
    batch = broadcast(a.shape[:-2], b.shape[:-2])
    if batch is None or a.shape[-1] != b.shape[-2]:
        return None
    out = (*batch, a.shape[-2], b.shape[-1])
    call.macs += numel(out) * a.shape[-1]
    return Meta(out, a.dtype, a.device)


@formula([torch.bmm, *methods("bmm")])
def bmm_shape(call: Call) -> Meta | None:
    a, b = (spec(v) for v in call.args) if len(call.args) == 2 and not call.kwargs else (None, None)
    if a is None or b is None or a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        return None
    return matmul_shape(call)


@formula([F.scaled_dot_product_attention])
def sdpa_shape(call: Call) -> Meta | None:
    """softmax(q k^T) v over batched heads; MACs = batch x L x S x (E + Ev), as torch counts them."""
    q, k, v = (floating(call.arg(i, n)) for i, n in enumerate(("query", "key", "value")))
    if q is None or k is None or v is None or not call.only(
            "query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", max_args=6):
        return None
    if q.ndim < 3 or not q.ndim == k.ndim == v.ndim or not q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
        return None
    if len({q.dtype, k.dtype, v.dtype}) > 1 or q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        return None
    mask = call.arg(3, "attn_mask")
    if mask is not None:
        m = spec(mask)
        if m is None or m.dtype not in (torch.bool, q.dtype) or \
                broadcast(m.shape, (*q.shape[:-1], k.shape[-2])) != (*q.shape[:-1], k.shape[-2]):
            return None
    out = (*q.shape[:-1], v.shape[-1])
    call.macs += numel(q.shape[:-1]) * k.shape[-2] * (q.shape[-1] + v.shape[-1])
    return Meta(out, q.dtype, q.device)


# ---- costs (``graphprune.costs``): MACs as a function of the kept channels

def _ids(layout: object, dims: object) -> list[Ids | None]:
    return [layout.get(d) for d in dims] if isinstance(layout, Layout) else []


def _matmul_cost(out: TensorInfo, operand: Callable, here: object) -> list:
    """(..., n, k) @ (..., k, m): out numel x k, scaled by the kept output and contracted channels."""
    a, layout = operand(0, "input")
    if not isinstance(a, TensorInfo) or not a.shape:
        return []
    return [(numel(out.shape) * a.shape[-1], _ids(here, range(out.ndim)) + _ids(layout, [a.ndim - 1]))]


def _sdpa_cost(out: TensorInfo, operand: Callable, here: object) -> list:
    """q @ k^T (L x S x E) and attn @ v (L x S x Ev); q, k, v positional or by name."""
    (q, lq), (k, lk), (v, lv) = (operand(i, name) for i, name in enumerate(("query", "key", "value")))
    if not all(isinstance(i, TensorInfo) for i in (q, k, v)):
        return []
    return [(numel(q.shape) * k.shape[-2], _ids(lq, range(q.ndim)) + _ids(lk, [k.ndim - 2])),
            (numel(out.shape) * k.shape[-2], _ids(here, range(out.ndim)) + _ids(lv, [k.ndim - 2]))]


declare(MATMULS, cost=_matmul_cost)
declare([F.scaled_dot_product_attention], cost=_sdpa_cost)


# ---- heads: what a projection's kept rows say about an attention block's width attributes


def head_widths(rows: list[int] | None, heads: int, head_dim: int, parts: int = 1) -> tuple[int, int]:
    """``(heads, head_dim)`` after a projection whose rows are laid out ``(parts, heads, head_dim)`` (a
    fused qkv has 3 parts) kept ``rows`` (dense numbering; None: all kept). Whole heads removed keep
    ``head_dim``; the same number of dims kept in every head keeps ``heads``; any other cut is not a
    width an attention block can describe (ValueError)."""
    if rows is None:
        return heads, head_dim
    counts = torch.zeros(parts * heads, dtype=torch.long)
    counts.index_add_(0, torch.as_tensor(rows, dtype=torch.long) // head_dim, torch.ones(len(rows), dtype=torch.long))
    per_part = counts.view(parts, heads)
    if not bool((per_part == per_part[0]).all()):
        raise ValueError(f"the {parts} parts of a fused projection keep different heads")
    kept = per_part[0][per_part[0] > 0]
    if not len(kept):
        raise ValueError("every head is removed")
    if bool((kept == head_dim).all()):
        return len(kept), head_dim
    if len(kept) == heads and bool((kept == kept[0]).all()):
        return heads, int(kept[0])
    raise ValueError(f"heads keep {sorted(set(per_part[0].tolist()))} of their {head_dim} dims: neither whole "
                     f"heads nor the same dims in every head")
