"""Sanity controls for pruning-at-initialisation masks: keep a mask's densities, scramble its wiring.

Why: a criterion that beats its baselines may do so only through the per-layer densities it chooses
(Frankle et al., "Pruning neural networks at initialization: why are we missing the mark?", 2021).
Shuffling a mask's kept positions within each layer keeps exactly those densities and destroys which
connections were kept; shuffling within each filter also keeps every output unit's fan-in. If training
the shuffled mask matches the criterion's own, the criterion's value lies in its densities alone.
A shuffle within a layer *is* a random mask at the criterion's per-layer densities (with exactly its
counts), so the two controls usually named separately are one here.
"""

from __future__ import annotations

import torch

from graphprune.scoring.targets import Masks

WITHIN = ("layer", "filter")


def _shuffle_rows(rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Every row's entries permuted independently (a row keeps its number of kept entries)."""
    keys = torch.rand(rows.shape, generator=generator)
    return torch.gather(rows, 1, torch.argsort(keys, dim=1))


def shuffled_masks(masks: Masks, seed: int, within: str = "layer") -> Masks:
    """``masks`` with the kept positions permuted uniformly at random ``within`` each layer (the same
    count per tensor) or each filter (the same count per output unit, dim 0). Deterministic in
    ``seed``; the layers are visited in sorted order so the result does not depend on dict order."""
    if within not in WITHIN:
        raise ValueError(f"within must be one of {', '.join(WITHIN)}, got {within!r}")
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for name in sorted(masks):
        mask = masks[name]
        rows = mask.reshape(1, -1) if within == "layer" else mask.reshape(mask.shape[0], -1)
        out[name] = _shuffle_rows(rows, generator).reshape(mask.shape)
    return {name: out[name] for name in masks}
