"""torchvision's layers and functions, everything graphprune knows about them in one place. Registered at
import when torchvision is installed (nothing otherwise); each behaves as the torch op it is aliased to.

- ``FrozenBatchNorm2d`` (detection backbones; a leaf only where a user keeps it opaque: fx traces through
  it otherwise): batch norm's channel rule and exact liveness, its ``num_features`` follows the weight.
  It has no other trait: fuse, purify, the path copies and recalibration leave it alone.
- ``StochasticDepth`` / ``stochastic_depth``: the identity in eval mode (shape formula below), and, as
  ``nn.Identity``'s alias, keeps zeros.
- Swin's ``_get_relative_position_bias``: a per-head table lookup that carries no channels.
"""

from __future__ import annotations

import importlib

from torch import nn

from graphprune.channels.layout import EMPTY, Layout
from graphprune.ops.registry import Liveness, alias, declare, formula, resizer
from graphprune.shapes.registry import Call, is_tensor


def _resize_frozen_bn(m: nn.Module, new_in: int | None) -> None:
    if hasattr(m, "num_features"):
        m.num_features = m.weight.shape[0]


def _eval_stochastic_depth(call: Call) -> object:
    """Outside training (or with p = 0) stochastic depth returns its input itself."""
    x, p = call.arg(0, "input"), call.arg(1, "p")
    mode, training = call.arg(2, "mode"), call.arg(3, "training", True)
    if not is_tensor(x) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0 or mode not in ("batch", "row"):
        return None
    return x if training is False or p == 0.0 else None


def _per_head_bias(ctx) -> Layout:  # noqa: ANN001
    """A relative-position bias gathered per head from its table, which is not sliced by head: the bias
    carries no channels, so head dims may shrink but a split by heads that meets it freezes."""
    ctx.freeze_inputs("relative position bias table is indexed per head")
    return EMPTY


def _register_layers() -> None:
    try:
        misc = importlib.import_module("torchvision.ops.misc")
        stochastic_depth = importlib.import_module("torchvision.ops.stochastic_depth")
    except Exception:  # torchvision absent or broken: nothing to register
        return
    alias([misc.FrozenBatchNorm2d], nn.BatchNorm2d)
    resizer([misc.FrozenBatchNorm2d])(_resize_frozen_bn)
    identities = [stochastic_depth.StochasticDepth, stochastic_depth.stochastic_depth]
    alias(identities, nn.Identity)
    formula([stochastic_depth.stochastic_depth])(_eval_stochastic_depth)


def _register_swin() -> None:
    try:
        swin = importlib.import_module("torchvision.models.swin_transformer")
    except Exception:
        return
    declare([swin._get_relative_position_bias], name="per_head_bias", propagate=_per_head_bias,
            liveness=Liveness.GENERIC)


_register_layers()
_register_swin()
