"""From scores to masks: global top-k thresholds and the iterative exponential density schedule.

Why a global threshold: pruning-at-initialisation criteria (SNIP, GraSP, SynFlow, PX) are compared
under one ranking over all layers, which is what lets them choose per-layer densities (and what makes
layer collapse possible for criteria without a conservation law). Ties and NaNs are resolved
deterministically: exactly ``round(density * total)`` weights are kept (at least one).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from graphprune.scoring.targets import Masks, Scores


def keep_count(total: int, density: float) -> int:
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density!r}")
    return max(1, min(total, round(density * total)))


def global_masks(scores: Scores, density: float) -> Masks:
    """Keep the ``density`` fraction of all weights with the highest score, over every tensor."""
    names = list(scores)
    flat = torch.cat([scores[n].detach().reshape(-1).double() for n in names])
    flat = torch.nan_to_num(flat, nan=-math.inf)
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    order = torch.argsort(flat, descending=True, stable=True)
    keep[order[:keep_count(flat.numel(), density)]] = True
    out, start = {}, 0
    for n in names:
        size = scores[n].numel()
        out[n] = keep[start:start + size].reshape(scores[n].shape)
        start += size
    return out


def local_masks(scores: Scores, density: float) -> Masks:
    """Keep the ``density`` fraction of every tensor separately (uniform per-layer density)."""
    return {n: global_masks({n: s}, density)[n] for n, s in scores.items()}


def exponential_schedule(density: float, rounds: int) -> list[float]:
    """Round r (0-based) keeps ``density ** ((r + 1) / rounds)``: geometric steps to the target."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    return [density ** ((r + 1) / rounds) for r in range(rounds)]


def iterate(score: Callable[[Masks | None], Scores], density: float, rounds: int,
            masks: Masks | None = None) -> tuple[Scores, Masks]:
    """Re-score the masked model each round and prune to the round's density (global threshold).

    Returns the last round's scores (computed on the model masked at the second-to-last density,
    so a global threshold at ``density`` over them reproduces the returned masks) and the masks."""
    scores: Scores = {}
    for d in exponential_schedule(density, rounds):
        scores = score(masks)
        ranked = scores if masks is None else {
            n: s.masked_fill(~masks[n], -math.inf) if n in masks else s for n, s in scores.items()}
        masks = global_masks(ranked, d)  # a pruned weight never comes back
    assert masks is not None
    return scores, masks


def layer_densities(masks: Masks) -> dict[str, float]:
    """The kept fraction of every tensor of ``masks``."""
    return {n: int(m.sum()) / max(m.numel(), 1) for n, m in masks.items()}


def iterate_within_layers(score: Callable[[Masks | None], Scores], densities: dict[str, float], rounds: int,
                          masks: Masks | None = None) -> tuple[Scores, Masks]:
    """``iterate`` with the per-layer densities given instead of chosen: round r keeps, in layer ``n``,
    the ``densities[n] ** ((r + 1) / rounds)`` fraction with the highest scores of that layer alone.

    Why: a global-threshold criterion decides two things at once, how dense each layer ends and which
    weights a layer keeps. Running criterion A within the layers at criterion B's final densities (its
    ``layer_densities``) separates them: the ablation of ``benchmarks/pai_ablation.py``. The last round
    keeps exactly ``round(densities[n] * numel)`` weights (none for a layer B emptied), so A's mask has
    B's counts; a pruned weight never comes back."""
    scores: Scores = {}
    for exponent in ((r + 1) / rounds for r in range(rounds)):
        scores = score(masks)
        if set(scores) != set(densities):
            raise ValueError(f"densities name {sorted(densities)} but the criterion scores {sorted(scores)}")
        out = {}
        for n, s in scores.items():
            flat = torch.nan_to_num(s.detach().reshape(-1).double(), nan=-math.inf)
            available = flat.numel()
            if masks is not None and n in masks:
                flat = flat.masked_fill(~masks[n].reshape(-1), -math.inf)
                available = int(masks[n].sum())
            keep = torch.zeros(flat.numel(), dtype=torch.bool)
            count = min(available, round(flat.numel() * densities[n] ** exponent))
            keep[torch.argsort(flat, descending=True, stable=True)[:count]] = True
            out[n] = keep.reshape(s.shape)
        masks = out
    assert masks is not None
    return scores, masks


def density_of(masks: Masks) -> float:
    total = sum(m.numel() for m in masks.values())
    return sum(int(m.sum()) for m in masks.values()) / max(total, 1)
