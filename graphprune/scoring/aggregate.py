"""Per-weight scores -> per-channel scores of a pruning group.

A channel's score sums, over the group's members (the producing convs' filters, the consumers' input
columns, norm affines...), the scores of the weights that removing the channel deletes: the slice of
each scored member along the member's dim, reduced over the other dims (as ``score-magnitude`` does
with norms). Members without per-weight scores (biases, norm affines) add nothing.

Channel-level criteria (FPGM, BN-scale) broadcast one score over a filter; for them ``outputs_only``
reads only output-dim members and ``reduce="mean"`` takes that score once instead of summing it
over the filter's size (a consumer's input column does not carry the producing filter's score).
"""

from __future__ import annotations

import numpy as np
import torch

from graphprune.channels.groups import PruningGroup
from graphprune.scoring.targets import Scores


def _reduce(score: torch.Tensor, dim: int, how: str) -> np.ndarray:
    other = [d for d in range(score.ndim) if d != dim]
    s = score.detach().double()
    r = (s.mean(other) if how == "mean" else s.sum(other)) if other else s
    return r.numpy()


def channel_scores(groups: list[PruningGroup], scores: Scores, *, outputs_only: dict[str, int] | None = None,
                   reduce: str = "sum") -> list[np.ndarray]:
    """One score array per group (aligned with ``groups``), from per-weight ``scores``."""
    if reduce not in ("sum", "mean"):
        raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
    per_group = []
    for group in groups:
        total = np.zeros(group.size, dtype=np.float64)
        for m in group.members:
            s = scores.get(m.fqn)
            if s is None or (outputs_only is not None and outputs_only.get(m.fqn) != m.dim):
                continue
            if s.shape[m.dim] != len(m.channel):
                raise ValueError(f"scores for {m.fqn} have {s.shape[m.dim]} entries along dim {m.dim}, "
                                 f"the group member has {len(m.channel)}: scores predate a removal")
            np.add.at(total, m.channel, _reduce(s, m.dim, reduce))
        per_group.append(total)
    return per_group
