"""Counting conv weights: what StructADMM's compression ratios divide.

``conv_census``: conv weight entries physically present and non-zero, and the all-zero filters and input
channels left inside conv layers (mask-level zeros no removal reached). Compression before and after
purification + unused-path removal (P-RM) is reported from two censuses. Read by the ADMM, purify and
retrain passes and the StructADMM benchmark alike, so it lives with none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from graphprune.channels.groups import PruningGroup


def _convs(module: nn.Module) -> list[torch.Tensor]:
    return [m.weight.detach() for m in module.modules() if isinstance(m, nn.modules.conv._ConvNd)]


def conv_params(module: nn.Module) -> int:
    """Conv weight entries the module holds (what 'conv compression' divides)."""
    return sum(w.numel() for w in _convs(module))


def conv_census(module: nn.Module) -> dict[str, int]:
    """Conv weight entries present and non-zero, and the all-zero filters (rows) and input channels left."""
    return _census(_convs(module))


def _census(convs: Sequence[torch.Tensor]) -> dict[str, int]:
    zero_filters = sum(int((w.reshape(w.shape[0], -1) == 0).all(1).sum()) for w in convs)
    zero_channels = sum(int((w.transpose(0, 1).reshape(w.shape[1], -1) == 0).all(1).sum()) for w in convs)
    return {"conv_params": sum(w.numel() for w in convs), "conv_nonzero": sum(int((w != 0).sum()) for w in convs),
            "zero_filters": zero_filters, "zero_channels": zero_channels}


def census_after_keep(module: nn.Module, groups: Sequence[PruningGroup], keep: np.ndarray) -> dict[str, int]:
    """``conv_census`` of what removing ``~keep`` from ``module`` would leave (without removing it)."""
    along = {(m.fqn, m.dim): torch.from_numpy(keep[g.labels[m.channel]]) for g in groups for m in g.members}
    convs = []
    for name, m in module.named_modules():
        if not isinstance(m, nn.modules.conv._ConvNd):
            continue
        fqn, w = f"{name}.weight" if name else "weight", m.weight.detach()
        rows = along.get((fqn, 0), torch.ones(w.shape[0], dtype=torch.bool))
        cols = along.get((fqn, 1), torch.ones(w.shape[1], dtype=torch.bool))
        convs.append(w[rows][:, cols])
    return _census(convs)


def compression(dense: int, census: dict[str, Any] | None) -> dict[str, float] | None:
    """Dense conv entries over the census's physical and non-zero ones."""
    if not census:
        return None
    return {"physical": round(dense / max(1, census["conv_params"]), 4),
            "nonzero": round(dense / max(1, census["conv_nonzero"]), 4)}
