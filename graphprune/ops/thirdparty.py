"""Rules for layers that torchvision and timm keep as fx leaves. Registered only when the package
imports (timm's once something else has imported timm: graphprune never imports it); each maps to the
torch layer it behaves like (same parameters, same per-channel semantics)."""

from __future__ import annotations

from graphprune.channels.layout import EMPTY, Layout
from graphprune.ops.registry import Liveness, alias, declare, register_when_imported, resizer


def _resize_frozen_bn(m, new_in: int | None) -> None:  # noqa: ANN001  (torchvision's FrozenBatchNorm2d)
    if hasattr(m, "num_features"):
        m.num_features = m.weight.shape[0]


def _register_torchvision() -> None:
    try:
        import importlib

        from torch import nn
        from torchvision.ops import misc
        stochastic_depth = importlib.import_module("torchvision.ops.stochastic_depth")
    except Exception:
        return
    alias([misc.FrozenBatchNorm2d], nn.BatchNorm2d)
    resizer([misc.FrozenBatchNorm2d])(_resize_frozen_bn)
    alias([stochastic_depth.StochasticDepth], nn.Identity)
    alias([stochastic_depth.stochastic_depth], nn.Identity)


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
    declare([swin._get_relative_position_bias], name="per_head_bias", propagate=_per_head_bias,
            liveness=Liveness.GENERIC)


def _register_timm() -> None:
    try:
        import importlib

        from torch import nn
        conv2d_same = importlib.import_module("timm.layers.conv2d_same")
        norm_act = importlib.import_module("timm.layers.norm_act")
    except Exception:
        return
    alias([conv2d_same.Conv2dSame], nn.Conv2d)
    bn_like = [getattr(norm_act, n) for n in ("BatchNormAct2d", "SyncBatchNormAct", "FrozenBatchNormAct2d")
               if hasattr(norm_act, n)]
    alias(bn_like, nn.BatchNorm2d)
    declare(bn_like, liveness=Liveness.NORM_ACT_MODULE)  # batch norm, then its drop and act submodules


_register_torchvision()
_register_torchvision_swin()
register_when_imported("timm", _register_timm)
