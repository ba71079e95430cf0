"""allocate: turn scores into a keep decision per channel.

Each group removes ``floor(sparsity * size)`` of its channels, lowest score first, among the
prunable ones (frozen channels are always kept); the kept count is rounded up to a multiple of
``round_to`` and never falls below ``min_channels``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from graphprune.channels.groups import PruningGroup
from graphprune.passes import Pass
from graphprune.state import CompileState


def removable(group: PruningGroup, exact: bool) -> np.ndarray:
    """Channels this plan may remove: prunable ones, minus inexact ones when exactness is required."""
    return group.prunable & ~group.inexact if exact else group.prunable


def keep_count(group: PruningGroup, sparsity: float, round_to: int, min_channels: int,
               can_remove: np.ndarray) -> int:
    """How many of the group's channels survive."""
    frozen = group.size - int(can_remove.sum())
    target = group.size - math.floor(sparsity * group.size)
    target = max(target, min_channels, frozen)
    if round_to > 1:
        target = min(group.size, math.ceil(target / round_to) * round_to)
    return target


def choose(group: PruningGroup, score: np.ndarray, keep: int, can_remove: np.ndarray) -> np.ndarray:
    """Bool per group channel: the frozen ones plus the best-scoring prunable ones up to ``keep``;
    then every member keeps its best channel, so no layer is left with zero width (a dense block's
    group spans many layers, and one layer's channels may all rank low)."""
    kept = ~can_remove
    budget = keep - int(kept.sum())
    if budget > 0:
        candidates = np.flatnonzero(can_remove)
        order = candidates[np.argsort(-score[candidates], kind="stable")]
        kept[order[:budget]] = True
    for member in group.members:
        if not kept[member.channel].any():
            kept[member.channel[np.argmax(score[member.channel])]] = True
    return kept


@dataclass(frozen=True)
class Allocate(Pass):
    name = "allocate"
    requires = frozenset({"groups"})
    provides = frozenset({"keep"})

    def run(self, state: CompileState) -> CompileState:
        opts = state.options
        if opts.score not in state.scores:
            raise KeyError(f"no scores named '{opts.score}'; have {sorted(state.scores)}")
        labels = state.channels.labels
        keep = np.ones(int(labels.max()) + 1 if len(labels) else 0, dtype=bool)
        for group, score in zip(state.channels.groups, state.scores[opts.score]):
            can_remove = removable(group, opts.exact)
            n = keep_count(group, opts.sparsity, opts.round_to, opts.min_channels, can_remove)
            keep[group.labels] = choose(group, score, n, can_remove)
        return state.with_(keep=keep)
