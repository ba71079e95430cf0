"""Mask-level structures beyond irregular: N:M and shape-wise (GEMM column) masks from per-weight scores.

Both view a conv weight as its GEMM matrix: rows are filters, columns are (input channel, kernel
position). N:M keeps the ``n`` best of every ``m`` consecutive input channels at each (filter, kernel
position), the layout sparse tensor cores accelerate; a layer whose input width is not a multiple of
``m`` cannot carry it and stays dense (reported by the caller). Shape-wise keeps the best columns of
each layer, a column's score being the sum over filters: removing a column removes the same (channel,
kernel position) from every filter, and a whole dead channel later becomes a removed channel."""

from __future__ import annotations

import torch

from graphprune.scoring.masks import keep_count
from graphprune.scoring.targets import Masks, Scores


def _as_rows(t: torch.Tensor) -> torch.Tensor:
    """(out, in, *k) -> (out * prod(k), in): input channels last, one row per (filter, kernel position)."""
    return t.movedim(1, -1).reshape(-1, t.shape[1])


def _from_rows(rows: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    moved = (shape[0], *shape[2:], shape[1])
    return rows.reshape(moved).movedim(-1, 1)


def nm_masks(scores: Scores, n: int, m: int) -> tuple[Masks, list[str]]:
    """(masks, layers left dense because their input width is not a multiple of ``m``)."""
    masks, skipped = {}, []
    for fqn, s in scores.items():
        if s.ndim < 2 or s.shape[1] % m:
            skipped.append(fqn)
            continue
        rows = _as_rows(s.detach().float())
        blocks = rows.reshape(rows.shape[0], -1, m)
        top = blocks.topk(n, dim=-1).indices
        keep = torch.zeros_like(blocks, dtype=torch.bool).scatter_(-1, top, True)
        masks[fqn] = _from_rows(keep.reshape(rows.shape), s.shape)
    return masks, skipped


def shape_masks(scores: Scores, density: float) -> Masks:
    """Per layer, keep the ``density`` fraction of GEMM columns with the largest summed score."""
    masks = {}
    for fqn, s in scores.items():
        if s.ndim < 2:
            continue
        column_score = s.detach().float().sum(dim=0)  # (in, *k)
        flat = column_score.flatten()
        keep = torch.zeros(flat.numel(), dtype=torch.bool)
        keep[flat.argsort(descending=True, stable=True)[:keep_count(flat.numel(), density)]] = True
        masks[fqn] = keep.reshape(column_score.shape).unsqueeze(0).expand_as(s).clone()
    return masks
