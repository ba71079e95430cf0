"""Trace-time decompositions: modules whose forward fx cannot trace, re-expressed with traceable ops.

``nn.MultiheadAttention`` hides its projections, head split and attention inside one opaque call, so as
a leaf every channel it touches would freeze. Its decomposition below computes the same function
(eval mode: attention dropout is off) from the module's own parameters with F.linear, reshape into
heads and scaled_dot_product_attention, which the channel rules understand; the graph's get_attr nodes
still name the module's parameters, so the pruned model keeps the user's parameter names.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _supported_mha(m: nn.MultiheadAttention) -> bool:
    return m._qkv_same_embed_dim and m.bias_k is None and m.bias_v is None and not m.add_zero_attn


def _as_additive(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Boolean masks become -inf where True; float masks are already additive."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


torch.fx.wrap("_as_additive")  # its dtype test runs at execution time, not while tracing


def _merge_masks(attn_mask: Tensor | None, key_padding_mask: Tensor | None, batch: Any, heads: int,
                 target: Any, source: Any, dtype: torch.dtype) -> Tensor | None:
    """Both masks as one additive float mask broadcastable to (B, H, L, S), as the module does."""
    merged = None
    if attn_mask is not None:
        mask = _as_additive(attn_mask, dtype)
        merged = mask.view(batch, heads, target, source) if attn_mask.dim() == 3 else mask
    if key_padding_mask is not None:
        pad = _as_additive(key_padding_mask, dtype).view(batch, 1, 1, source)
        merged = pad if merged is None else merged + pad
    return merged


def multihead_attention(m: nn.MultiheadAttention, query: Tensor, key: Tensor, value: Tensor,
                        key_padding_mask: Tensor | None = None, need_weights: bool = True,
                        attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                        is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
    if not m.batch_first:
        query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
    heads, head_dim = m.num_heads, m.head_dim
    w_q, w_k, w_v = m.in_proj_weight.chunk(3)
    if m.in_proj_bias is not None:
        b_q, b_k, b_v = m.in_proj_bias.chunk(3)
    else:
        b_q = b_k = b_v = None
    batch, target, source = query.size(0), query.size(1), key.size(1)
    q = F.linear(query, w_q, b_q).reshape(batch, target, heads, head_dim).transpose(1, 2)
    k = F.linear(key, w_k, b_k).reshape(batch, source, heads, head_dim).transpose(1, 2)
    v = F.linear(value, w_v, b_v).reshape(batch, source, heads, head_dim).transpose(1, 2)
    mask = _merge_masks(attn_mask, key_padding_mask, batch, heads, target, source, m.in_proj_weight.dtype)
    scale = 1.0 / math.sqrt(head_dim)
    if need_weights:
        scores = torch.matmul(q, k.transpose(-2, -1)) * scale
        if mask is not None:
            scores = scores + mask
        elif is_causal:
            scores = scores + torch.full((target, source), float("-inf")).triu(1)
        weights = scores.softmax(-1)
        out = torch.matmul(weights, v)
    else:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal and mask is None)
        weights = None
    out = out.transpose(1, 2).reshape(batch, target, heads * head_dim)
    out = m.out_proj(out)
    if not m.batch_first:
        out = out.transpose(0, 1)
    if weights is not None and average_attn_weights:
        weights = weights.mean(1)
    return out, weights


DECOMPOSITIONS: dict[type, tuple[Callable[[nn.Module], bool], Callable[..., Any]]] = {
    nn.MultiheadAttention: (_supported_mha, multihead_attention),
}


def decomposition_for(m: nn.Module) -> Callable[..., Any] | None:
    entry = DECOMPOSITIONS.get(type(m))
    if entry is None or not entry[0](m):
        return None
    return entry[1]
