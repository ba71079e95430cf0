"""From per-layer zeros to removed channels, and the counts that say how much was removed.

``zeroed_keep``: after a hard prune, a group channel is removed when every parameter slice of it in
every member is zero (its producers write zeros, its consumers read none), the liveness analysis agrees
it is dead, and the allocation allows it (frozen channels stay). What only the unused-path fixed point can
see (a zero filter whose consumers still hold weights for it) is left to ``remove-unused-paths``.

The counts (conv census, compression) are ``graphprune.conv_census``'s.
"""

from __future__ import annotations

from collections.abc import Sequence

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
