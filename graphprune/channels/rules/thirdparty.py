"""Rules for layers that torchvision and timm keep as fx leaves. Registered only when the package
imports (timm's once something else has imported timm: graphprune never imports it); each maps to the
torch layer it behaves like (same parameters, same per-channel semantics)."""

from __future__ import annotations

from graphprune.channels.layout import EMPTY, Layout
from graphprune.channels.registry import RULES, Liveness, Rule, register_when_imported


def _alias(new_types: list[type], like: type) -> None:
    rule: Rule = RULES[like]
    for t in new_types:
        RULES[t] = rule


def _register_torchvision() -> None:
    try:
        import importlib

        from torch import nn
        from torchvision.ops import misc
        stochastic_depth = importlib.import_module("torchvision.ops.stochastic_depth")
    except Exception:
        return
    _alias([misc.FrozenBatchNorm2d], nn.BatchNorm2d)
    _alias([stochastic_depth.StochasticDepth], nn.Identity)
    RULES[stochastic_depth.stochastic_depth] = RULES[nn.Identity]


def _per_head_bias(ctx) -> Layout:
    """A relative-position bias gathered per head from its table: heads are never removed (head dims
    are), so the table keeps its width and the bias carries no channels."""
    ctx.freeze_inputs("relative position bias table is indexed per head")
    return EMPTY


def _register_torchvision_swin() -> None:
    try:
        import importlib

        swin = importlib.import_module("torchvision.models.swin_transformer")
    except Exception:
        return
    RULES[swin._get_relative_position_bias] = Rule("per_head_bias", _per_head_bias, liveness=Liveness.GENERIC)


def _register_timm() -> None:
    try:
        import importlib

        from torch import nn
        conv2d_same = importlib.import_module("timm.layers.conv2d_same")
        norm_act = importlib.import_module("timm.layers.norm_act")
    except Exception:
        return
    _alias([conv2d_same.Conv2dSame], nn.Conv2d)
    bn_like = [getattr(norm_act, n) for n in ("BatchNormAct2d", "SyncBatchNormAct", "FrozenBatchNormAct2d")
               if hasattr(norm_act, n)]
    _alias(bn_like, nn.BatchNorm2d)


_register_torchvision()
_register_torchvision_swin()
register_when_imported("timm", _register_timm)
