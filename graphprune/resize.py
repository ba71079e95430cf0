"""After parameters shrink, module attributes must say the new sizes (``in_channels``, ``num_features``,
``normalized_shape``, ``groups``...). Each op family declares its modules' resize in the op table
(``graphprune.ops``): the module's forward reads these attributes, and a stale one is a wrong model or a
crash at export."""

from __future__ import annotations

from torch import nn

from graphprune.ops.registry import inherited


def fix_attributes(module: nn.Module, new_in: int | None) -> None:
    resize = inherited(module, "resize")
    if resize is not None:
        resize(module, new_in)
