"""timm's layers that stay fx leaves (timm declares them not-traceable; ``graphprune.trace`` keeps one
opaque where tracing through it fails), everything graphprune knows about them in one place.

Registered once something else has imported timm: graphprune never imports it (a model built from its
layers implies the import). Each behaves as the torch layer it is aliased to:

- ``Conv2dSame``: a conv2d (its parameters and channels are a Conv2d's);
- ``BatchNormAct2d`` / ``SyncBatchNormAct`` / ``FrozenBatchNormAct2d``: batch norm, then its ``drop``
  and ``act`` submodules: batch norm's channel rule; liveness knows its output is zero only where
  both keep zero (``Liveness.NORM_ACT_MODULE``).
"""

from __future__ import annotations

import importlib

from torch import nn

from graphprune.ops.registry import Liveness, alias, declare, register_when_imported

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


register_when_imported("timm", _register)
