"""From per-layer zeros to removed channels, and the counts that say how much was removed.

``zeroed_keep``: after a hard prune, a group channel is removed when every parameter slice of it in
every member is zero (its producers write zeros, its consumers read none), the liveness analysis agrees
it is dead, and the allocation allows it (frozen channels stay). What only the unused-path fixed point can
see (a zero filter whose consumers still hold weights for it) is left to ``remove-unused-paths``.

``conv_census``: conv weight entries physically present and non-zero, and the all-zero filters and input
channels left inside conv layers (mask-level zeros no removal reached). Compression before and after
purification + unused-path removal (P-RM) is reported from two censuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from graphprune.admm.projections import member_energy
from graphprune.allocation import every_member_keeps_one, removable
from graphprune.channels.groups import PruningGroup


def _zero_channels(group: PruningGroup, params: dict[str, torch.Tensor], exact: bool) -> np.ndarray:
    """Bool per group channel: removable and zero in every parameter member (buffers do not decide)."""
    zero = removable(group, exact).copy()
    seen = False
    for m in group.members:
        if m.fqn not in params:
            continue
        seen = True
        alive = np.zeros(group.size, dtype=bool)
        np.logical_or.at(alive, m.channel, member_energy(params[m.fqn], m.dim) > 0)
        zero &= ~alive
    return zero if seen else np.zeros(group.size, dtype=bool)


def zeroed_keep(module: nn.Module, groups: Sequence[PruningGroup], num_labels: int, dead: np.ndarray,
                exact: bool = False) -> np.ndarray:
    """Bool per channel label: False where every member slice is zero and ``dead`` (liveness) agrees;
    every member keeps at least one channel."""
    params = {n: p.detach() for n, p in module.named_parameters()}
    keep = np.ones(num_labels, dtype=bool)
    for g in groups:
        if g.num_prunable:
            kept = ~(_zero_channels(g, params, exact) & dead[g.labels])
            keep[g.labels] = every_member_keeps_one(g, np.zeros(g.size), kept)
    return keep


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
