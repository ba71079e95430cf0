"""timm's layers that stay fx leaves (timm declares them not-traceable; ``graphprune.trace`` keeps one
opaque where tracing through it fails), everything graphprune knows about them in one place.

Registered once something else has imported timm: graphprune never imports it (a model built from its
layers implies the import). Each behaves as the torch layer it is aliased to:

- ``Conv2dSame``: a conv2d (its parameters and channels are a Conv2d's);
- ``BatchNormAct2d`` / ``SyncBatchNormAct`` / ``FrozenBatchNormAct2d``: batch norm, then its ``drop``
  and ``act`` submodules: batch norm's channel rule; liveness knows its output is zero only where
  both keep zero (``Liveness.NORM_ACT_MODULE``).

For ``apply(..., form="module")`` (``resize_block``; these blocks are traced through, not leaves):
``Attention``'s ``num_heads``/``head_dim``/``attn_dim`` follow its fused qkv's kept rows; ``scale`` keeps the
dense value, as the pruned graph does, so a head-dim cut turns ``fused_attn`` off (fused SDPA would scale by
the new head dim); ``VisionTransformer``'s ``embed_dim``/``num_features``/
``head_hidden_size`` follow its class token and head; ``LayerScale`` has no width attribute.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from torch import nn

from graphprune.ops.attention import head_widths
from graphprune.ops.registry import Liveness, alias, block_resizer, declare, register_when_imported, resizer

_BN_ACT = ("BatchNormAct2d", "SyncBatchNormAct", "FrozenBatchNormAct2d")


def _register() -> None:
    try:
        conv2d_same = importlib.import_module("timm.layers.conv2d_same")
        norm_act = importlib.import_module("timm.layers.norm_act")
    except Exception:  # timm broken or too old: nothing to register
        return
    alias([conv2d_same.Conv2dSame], nn.Conv2d)
    bn_act = [getattr(norm_act, n) for n in _BN_ACT if hasattr(norm_act, n)]
    alias(bn_act, nn.BatchNorm2d)
    declare(bn_act, liveness=Liveness.NORM_ACT_MODULE)


def _resize_attention(m: nn.Module, kept: Mapping[str, Mapping[int, list[int]]]) -> None:
    rows = kept.get("qkv.weight", {}).get(0)
    dense_head_dim = m.head_dim
    m.num_heads, m.head_dim = head_widths(rows, m.num_heads, m.head_dim, parts=3)
    if m.head_dim != dense_head_dim and getattr(m, "fused_attn", False):
        m.fused_attn = False  # fused SDPA scales by the new head_dim; the unfused path reads the dense ``scale``
    if hasattr(m, "attn_dim"):
        m.attn_dim = m.num_heads * m.head_dim


def _resize_vision_transformer(m: nn.Module, kept: Mapping[str, Mapping[int, list[int]]]) -> None:
    token = next((t for t in (getattr(m, "cls_token", None), getattr(m, "pos_embed", None)) if t is not None), None)
    if token is not None:
        m.embed_dim = m.num_features = token.shape[-1]
    head = getattr(m, "head", None)
    m.head_hidden_size = head.in_features if isinstance(head, nn.Linear) else m.num_features


def _register_blocks() -> None:
    try:
        attention = importlib.import_module("timm.layers.attention")
        layer_scale = importlib.import_module("timm.layers.layer_scale")
        vit = importlib.import_module("timm.models.vision_transformer")
    except Exception:  # timm broken or too old: nothing to register
        return
    block_resizer([attention.Attention])(_resize_attention)
    block_resizer([vit.VisionTransformer])(_resize_vision_transformer)
    resizer([layer_scale.LayerScale])(lambda m, new_in: None)  # gamma's width is its only size


register_when_imported("timm", _register)
register_when_imported("timm", _register_blocks)
