"""Euclidean projections onto StructADMM's sparsity sets (the Z-step).

Every set here is "at most k non-zero blocks" for a partition of the tensor's entries into blocks,
so the nearest point keeps the k blocks of largest L2 norm and zeroes the rest (keeping a block
removes its squared norm from ||X - Z||^2, the other entries of Z equal X's). A conv weight is read
as the GEMM matrix F x (C*kh*kw):

- filter-wise: blocks are rows (output channels);
- channel-wise: blocks are the columns of one input channel (dim 1, all kernel positions);
- shape-wise: blocks are single GEMM columns, the same (c, kh, kw) in every filter;
- irregular: blocks are single weights;
- N:M: the product of independent sets "at most n of each m consecutive input channels" (per output
  and kernel position), so each run of m is projected on its own; a short tail run keeps min(n, len).

The **group** set is what makes the projected Z removable: a pruning group's channels appear in
several tensors (a stage's convs tied by residual adds, their norms, the consumers' input columns),
and a channel's block is its slice in *every* member. Its projection keeps the channels of largest
total squared norm over the members (allocation's ``choose``, so frozen channels, ``round_to``
and the one-channel-per-member floor are honoured exactly as for magnitude pruning) and zeroes the
dropped ones in every member, so coupled members keep identical channel sets.

Exactness: each single set above is projected exactly. When the per-member floor of ``choose``
binds, the extra channel it keeps is a feasibility guard, not part of the nearest point. Several
groups share tensors (a weight's rows belong to one group, its columns to another), and the
intersection of their sets has no closed-form projection: every group is scored on the same
unprojected X and their zeros are combined, which is feasible for all of them but not the nearest
point of the intersection. ``project_sequential`` (the paper's combination of structures) is
likewise feasible, not exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from graphprune.allocation import Limits, choose, keep_count, per_producer, removable
from graphprune.channels.groups import PruningGroup

Tensor = torch.Tensor


def top_k_mask(norms: Tensor, k: int) -> Tensor:
    """Bool mask of the ``k`` largest entries of a 1-d tensor (ties: lower index first)."""
    mask = torch.zeros(norms.numel(), dtype=torch.bool, device=norms.device)
    k = max(0, min(int(k), norms.numel()))
    mask[torch.argsort(norms.flatten(), descending=True, stable=True)[:k]] = True
    return mask.view(norms.shape)


def _gemm(x: Tensor) -> Tensor:
    return x.detach().reshape(x.shape[0], -1)


def filter_mask(x: Tensor, k: int) -> Tensor:
    """Keep the ``k`` rows of the GEMM view (output channels) of largest L2 norm."""
    rows = top_k_mask(torch.linalg.vector_norm(_gemm(x).double(), dim=1), k)
    return rows.view(-1, *([1] * (x.ndim - 1))).expand(x.shape)


def channel_mask(x: Tensor, k: int) -> Tensor:
    """Keep the ``k`` input channels (dim 1) of largest L2 norm over all filters and kernel positions."""
    norms = torch.linalg.vector_norm(x.detach().double().transpose(0, 1).reshape(x.shape[1], -1), dim=1)
    return top_k_mask(norms, k).view(1, -1, *([1] * (x.ndim - 2))).expand(x.shape)


def shape_mask(x: Tensor, k: int) -> Tensor:
    """Keep the ``k`` GEMM columns ((c, kh, kw) positions shared by every filter) of largest L2 norm."""
    cols = top_k_mask(torch.linalg.vector_norm(_gemm(x).double(), dim=0), k)
    return cols.view(1, *x.shape[1:]).expand(x.shape)


def irregular_mask(x: Tensor, k: int) -> Tensor:
    """Keep the ``k`` weights of largest magnitude."""
    return top_k_mask(x.detach().abs(), k)


def n_m_mask(x: Tensor, n: int, m: int) -> Tensor:
    """Keep the ``n`` largest-magnitude weights of every ``m`` consecutive input channels (dim 1; the last
    dim of a Linear weight), separately for each output channel and kernel position."""
    if not 0 < n <= m:
        raise ValueError(f"N:M sparsity needs 0 < n <= m, got {n}:{m}")
    mag = x.detach().abs().movedim(1, -1).double()  # (F, kh, kw, C)
    c = mag.shape[-1]
    pad = -c % m
    padded = torch.cat([mag, mag.new_full((*mag.shape[:-1], pad), -1.0)], -1) if pad else mag
    runs = padded.reshape(*mag.shape[:-1], -1, m)
    order = torch.argsort(runs, dim=-1, descending=True, stable=True)
    keep = torch.zeros_like(runs, dtype=torch.bool).scatter_(-1, order[..., :n], True)
    keep = keep.reshape(*mag.shape[:-1], -1)[..., :c]
    return keep.movedim(-1, 1)


def _project(mask_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def project(x: Tensor, *args: int) -> Tensor:
        return x * mask_fn(x, *args)
    project.__doc__ = f"Euclidean projection of ``x``: ``x * {mask_fn.__name__}(x, ...)``."
    return project


project_filters = _project(filter_mask)
project_channels = _project(channel_mask)
project_shapes = _project(shape_mask)
project_irregular = _project(irregular_mask)
project_n_m = _project(n_m_mask)


def project_sequential(x: Tensor, steps: Sequence[Callable[[Tensor], Tensor]]) -> Tensor:
    """Project onto each set in turn. Every set here is closed under zeroing more entries, so the result
    lies in the intersection; it is *not* in general the nearest point of the intersection (the paper
    notes combinations have no closed-form projection)."""
    for step in steps:
        x = step(x)
    return x


def kept_count(size: int, sparsity: float) -> int:
    """Blocks a per-tensor set keeps at ``sparsity``: ``size - floor(sparsity * size)``, at least one."""
    return max(1, size - math.floor(sparsity * size))


# ------------------------------------------------------------------------------- group projection


@dataclass(frozen=True)
class GroupProjection:
    """The Z-step over pruning groups: per-group kept channels, the per-label keep vector that
    ``remove-channels`` consumes, and a bool mask for every projected tensor (True = kept)."""

    kept: list[np.ndarray | None]  # per group: bool per group channel, None when not projected
    keep: np.ndarray  # bool per channel label
    masks: dict[str, Tensor]


def member_energy(tensor: Tensor, dim: int) -> np.ndarray:
    """Squared L2 norm of every slice of ``tensor`` along ``dim``."""
    t = tensor.detach().double()
    if t.ndim == 1:
        return (t * t).cpu().numpy()
    return (t * t).sum(dim=[d for d in range(t.ndim) if d != dim]).cpu().numpy()


def group_energy(tensors: Mapping[str, Tensor], group: PruningGroup) -> np.ndarray:
    """Per group channel: its squared norm summed over every member tensor present in ``tensors``
    (what zeroing the channel removes from ||X - Z||^2)."""
    energy = np.zeros(group.size, dtype=np.float64)
    for m in group.members:
        if m.fqn in tensors:
            np.add.at(energy, m.channel, member_energy(tensors[m.fqn], m.dim))
    return energy


def group_keep_count(group: PruningGroup, sparsity: float, round_to: int = 1, min_channels: int = 1,
                     exact: bool = False) -> tuple[int, np.ndarray]:
    """(channels kept, bool per channel that may be removed) for one group, as ``allocate`` counts them;
    a group's divisor (heads, groups) joins ``round_to``."""
    can_remove = removable(group, exact)
    step = math.lcm(max(1, round_to), max(1, group.divisor))
    return keep_count(group, sparsity, step, min_channels, can_remove), can_remove


def project_groups(tensors: Mapping[str, Tensor], groups: Sequence[PruningGroup], num_labels: int,
                   sparsity: float | Sequence[float | None], *, round_to: int = 1, min_channels: int = 1,
                   exact: bool = False) -> GroupProjection:
    """Project ``tensors`` (fqn -> X) onto the structured channel set of every group. ``sparsity`` is one
    fraction for all groups or one per group (None or 0: the group is not constrained)."""
    per_group = [sparsity] * len(groups) if isinstance(sparsity, (int, float)) else list(sparsity)
    if len(per_group) != len(groups):
        raise ValueError(f"{len(per_group)} sparsities for {len(groups)} groups")
    keep = np.ones(num_labels, dtype=bool)
    kept: list[np.ndarray | None] = []
    for group, s in zip(groups, per_group):
        if not s or not group.num_prunable or not any(m.fqn in tensors for m in group.members):
            kept.append(None)
            continue
        chosen = _project_group(tensors, group, float(s), round_to, min_channels, exact)
        keep[group.labels] = chosen
        kept.append(chosen)
    return GroupProjection(kept, keep, group_masks(tensors, groups, kept))


def _project_group(tensors: Mapping[str, Tensor], group: PruningGroup, sparsity: float, round_to: int,
                   min_channels: int, exact: bool) -> np.ndarray:
    """The kept channels of one group, under the same rule ``allocate`` applies: the ratio per producer
    share of a concatenation group (exact projection: the shares' counts are independent), else one
    count for the group."""
    energy = group_energy(tensors, group)
    step = math.lcm(max(1, round_to), max(1, group.divisor))
    if len(group.producers) > 1 and step <= 1:
        return per_producer(group, energy, removable(group, exact), group.producers, sparsity,
                            Limits(min_channels=min_channels))
    count, can_remove = group_keep_count(group, sparsity, round_to, min_channels, exact)
    return choose(group, energy, count, can_remove)


def group_masks(tensors: Mapping[str, Tensor], groups: Sequence[PruningGroup],
                kept: Sequence[np.ndarray | None]) -> dict[str, Tensor]:
    """Bool mask per tensor: an entry survives when its index along every member dim is a kept channel."""
    masks = {fqn: torch.ones(t.shape, dtype=torch.bool, device=t.device) for fqn, t in tensors.items()}
    for group, chosen in zip(groups, kept):
        if chosen is None:
            continue
        for m in group.members:
            if m.fqn not in masks:
                continue
            mask = masks[m.fqn]
            along = torch.from_numpy(chosen[m.channel]).to(mask.device)
            shape = [1] * mask.ndim
            shape[m.dim] = -1
            masks[m.fqn] = mask & along.view(shape)
    return masks
