"""From per-channel scores to a keep decision: local ratios, global thresholds and cost budgets.

Every decision goes through ``keep_count`` (how many channels a group keeps: floors, caps and
``round_to``) and ``choose`` (which ones: the best scores, frozen channels always, at least one per
member). Global allocation compares channels across groups on scores divided by their group's mean,
so a layer with large weights does not win every comparison. A budget is met by bisection on that
global threshold (or, in local scope, on one ratio shared by all groups) against a ``CostModel``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from graphprune.channels.groups import PruningGroup

BUDGET_TOLERANCE = 0.02  # relative: a budget is met when the cost is within 2 % of the target


def removable(group: PruningGroup, exact: bool) -> np.ndarray:
    """Channels this plan may remove: prunable ones, minus inexact ones when exactness is required."""
    return group.prunable & ~group.inexact if exact else group.prunable


def keep_count(group: PruningGroup, sparsity: float, round_to: int, min_channels: int,
               can_remove: np.ndarray, max_fraction: float = 1.0) -> int:
    """How many of the group's channels survive removing ``sparsity`` of them."""
    target = group.size - math.floor(sparsity * group.size)
    return clamp_count(group, target, round_to, min_channels, can_remove, max_fraction)


def clamp_count(group: PruningGroup, target: int, round_to: int, min_channels: int, can_remove: np.ndarray,
                max_fraction: float = 1.0) -> int:
    return _clamp(group.size, target, round_to, min_channels, int(can_remove.sum()), max_fraction)


def _clamp(size: int, target: int, round_to: int, min_channels: int, removable_count: int,
           max_fraction: float) -> int:
    """``target`` kept channels out of ``size``, raised to the floors (minimum width, the channels that
    cannot go, the per-group removal cap) and rounded up to ``round_to``."""
    floor = size - math.floor(max_fraction * size + 1e-9)
    target = max(target, min_channels, size - removable_count, floor)
    if round_to > 1:
        target = math.ceil(target / round_to) * round_to
    return min(size, target)


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
    return every_member_keeps_one(group, score, kept)


def every_member_keeps_one(group: PruningGroup, score: np.ndarray, kept: np.ndarray) -> np.ndarray:
    for member in group.members:
        if not kept[member.channel].any():
            kept[member.channel[np.argmax(score[member.channel])]] = True
    return kept


def per_producer(group: PruningGroup, score: np.ndarray, can_remove: np.ndarray, producers: list[np.ndarray],
                 sparsity: float, limits: Limits) -> np.ndarray:
    """Remove ``sparsity`` of every producer's channels, each by its own best scores.

    Why: a channel's score sums its members' norms, and in a concatenation group (a dense block) a
    channel feeding many later layers sums many norms. One ratio over the whole group then keeps the
    early layers whole and cuts the late ones to a single channel (measured on densenet121: 32 -> 1
    for denseblock1.denselayer3..6, 3.03x fewer MACs where a per-layer 50 % gives 3.84x, and ragged
    widths that run slower per MAC). Per producer, every layer keeps its share."""
    kept = ~can_remove
    for part in producers:
        removable_here = part[can_remove[part]]
        keep = _clamp(len(part), len(part) - math.floor(sparsity * len(part)), 1, 1, len(removable_here),
                      limits.max_fraction)
        budget = keep - (len(part) - len(removable_here))
        if budget > 0:
            order = removable_here[np.argsort(-score[removable_here], kind="stable")]
            kept[order[:budget]] = True
    short = limits.min_channels - int(kept.sum())
    if short > 0:  # the group as a whole still keeps min_channels
        order = np.flatnonzero(~kept)
        kept[order[np.argsort(-score[order], kind="stable")][:short]] = True
    return every_member_keeps_one(group, score, kept)


@dataclass(frozen=True)
class Limits:
    round_to: int = 1
    min_channels: int = 1
    max_fraction: float = 1.0
    exact: bool = False


@dataclass
class Candidate:
    """A group under one rule, with its removable channels' normalised scores sorted ascending."""

    group: PruningGroup
    score: np.ndarray
    can_remove: np.ndarray
    normalised: np.ndarray

    @classmethod
    def of(cls, group: PruningGroup, score: np.ndarray, exact: bool) -> Candidate:
        can_remove = removable(group, exact)
        s = score[can_remove]
        mean = float(s.mean()) if len(s) else 0.0
        normalised = np.sort(s / mean) if mean > 0 else np.zeros(len(s))
        return cls(group, score, can_remove, normalised)

    def keep_at_ratio(self, sparsity: float, limits: Limits) -> np.ndarray:
        """The ratio applies to each producer's share of the group (see ``per_producer``) unless
        ``round_to`` asks for a multiple of the whole group's width."""
        producers = self.group.producers
        if len(producers) > 1 and limits.round_to <= 1:
            return per_producer(self.group, self.score, self.can_remove, producers, sparsity, limits)
        n = keep_count(self.group, sparsity, limits.round_to, limits.min_channels, self.can_remove,
                       limits.max_fraction)
        return choose(self.group, self.score, n, self.can_remove)

    def keep_at_threshold(self, threshold: float, limits: Limits) -> np.ndarray:
        """Remove the removable channels whose normalised score is below ``threshold``."""
        below = int(np.searchsorted(self.normalised, threshold, side="left"))
        n = clamp_count(self.group, self.group.size - below, limits.round_to, limits.min_channels,
                        self.can_remove, limits.max_fraction)
        return choose(self.group, self.score, n, self.can_remove)


Apply = Callable[[Sequence[np.ndarray]], float]  # per-candidate keep arrays -> measured quantity


def decide(candidates: Sequence[Candidate], limits: Limits, *, scope: str, parameter: float) -> list[np.ndarray]:
    """Keep arrays for one rule at a ratio (local) or global threshold (global) ``parameter``."""
    if scope == "local":
        return [c.keep_at_ratio(parameter, limits) for c in candidates]
    return [c.keep_at_threshold(parameter, limits) for c in candidates]


def global_sparsity(candidates: Sequence[Candidate], limits: Limits, sparsity: float) -> list[np.ndarray]:
    """One threshold over all candidates removing ``floor(sparsity * channels)`` channels in total
    (fewer where floors and caps forbid)."""
    total = sum(c.group.size for c in candidates)
    wanted = total - math.floor(sparsity * total)
    kept = lambda keeps: float(sum(int(k.sum()) for k in keeps))  # noqa: E731
    return search(candidates, limits, "global", lambda keeps: kept(keeps), wanted)[0]


def thresholds(candidates: Sequence[Candidate]) -> np.ndarray:
    values = np.unique(np.concatenate([c.normalised for c in candidates] or [np.zeros(0)]))
    return np.concatenate([[0.0], values + 1e-12, [np.inf]]) if len(values) else np.array([0.0, np.inf])


def search(candidates: Sequence[Candidate], limits: Limits, scope: str, measure: Apply, target: float
           ) -> tuple[list[np.ndarray], float]:
    """The decision whose measure (non-increasing as pruning grows) is closest to ``target``, never
    above it by more than the tolerance; returns (keep arrays, measured value). When even the most
    pruning allowed stays above the target, that decision is returned and the caller reports it."""
    grid = thresholds(candidates) if scope == "global" else np.linspace(0.0, 0.999999, 4097)
    lo, hi = 0, len(grid) - 1
    cache: dict[int, tuple[list[np.ndarray], float]] = {}

    def at(i: int) -> tuple[list[np.ndarray], float]:
        if i not in cache:
            keeps = decide(candidates, limits, scope=scope, parameter=float(grid[i]))
            cache[i] = (keeps, measure(keeps))
        return cache[i]

    if at(lo)[1] <= target:
        return at(lo)
    if at(hi)[1] > target:
        return at(hi)
    while hi - lo > 1:  # invariant: at(lo) > target >= at(hi)
        mid = (lo + hi) // 2
        if at(mid)[1] > target:
            lo = mid
        else:
            hi = mid
    below, above = at(hi), at(lo)
    if above[1] > target * (1 + BUDGET_TOLERANCE):
        return below  # a budget is a ceiling: never exceed it by more than the tolerance
    return below if target - below[1] <= above[1] - target else above
