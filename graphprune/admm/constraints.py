"""Constraint sets for the ADMM loop: which parameters are constrained and how they are projected.

A constraint maps the current ``W + U`` (fqn -> tensor) and a target sparsity to a ``Projection``: a
bool mask per constrained tensor (``Z = X * mask``) and, for removable structures, the keep vector
per channel label that ``remove-channels`` consumes. Structures:

- ``group``: the coupled group projection (``projections.project_groups``): a channel is zeroed in every
  member of its pruning group at once, so the keep vector is removable as it stands.
- ``filter``, ``channel``, ``shape``: the paper's per-layer filter-wise, channel-wise and shape-wise sets
  (``graphprune.admm.layers``); mask-level while training, removal where whole channels die.
- ``irregular``, ``N:M`` (e.g. ``"2:4"``): per-tensor, mask-level (shapes are kept).
- ``SequentialConstraint``: several of these in turn (feasible, not the exact projection).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import fx, nn

import graphprune.admm.projections as P
from graphprune.admm.layers import LAYER_STRUCTURES, LayerSet, layer_masks, layer_sets, target_of
from graphprune.channels.groups import PruningGroup
from graphprune.errors import InputError
from graphprune.ops.registry import Trait, has_trait

Tensor = torch.Tensor
GROUP_STRUCTURES = ("group",)
WEIGHT_STRUCTURES = ("irregular",)
STRUCTURES = GROUP_STRUCTURES + LAYER_STRUCTURES + WEIGHT_STRUCTURES


@dataclass(frozen=True)
class Projection:
    masks: dict[str, Tensor]  # fqn -> bool, True = kept
    keep: np.ndarray | None = None  # bool per channel label (removable structures only)


class Constraint(Protocol):
    names: tuple[str, ...]  # the constrained parameters' fqns

    def project(self, tensors: Mapping[str, Tensor], sparsity: float) -> Projection: ...


@dataclass(frozen=True)
class GroupConstraint:
    """Channels of pruning groups: coupled members keep identical channel sets."""

    groups: Sequence[PruningGroup]
    num_labels: int
    names: tuple[str, ...]
    round_to: int = 1
    min_channels: int = 1
    exact: bool = False
    # group index -> its target as a fraction of the run's (a plan's rules may ask different sparsities;
    # 0 leaves the group alone); None: every prunable group at the run's target
    scale: Mapping[int, float] | None = None

    def project(self, tensors: Mapping[str, Tensor], sparsity: float) -> Projection:
        factor = (lambda g: 1.0) if self.scale is None else (lambda g: self.scale.get(g.index, 0.0))
        per_group = [min(sparsity * factor(g), 0.999) or None for g in self.groups]
        proj = P.project_groups(tensors, self.groups, self.num_labels, per_group, round_to=self.round_to,
                                min_channels=self.min_channels, exact=self.exact)
        return Projection(proj.masks, proj.keep)


@dataclass(frozen=True)
class LayerConstraint:
    """A per-layer set (``filter``, ``channel`` or ``shape``) on every layer in ``sets``, each at its own
    target (the run's, scaled by its group's rule: ``scale`` as for ``GroupConstraint``)."""

    sets: tuple[LayerSet, ...]
    scale: Mapping[int, float] | None = None
    round_to: int = 1  # filter and channel sets keep a multiple of it (the plan's [allocate] round_to)
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(dict.fromkeys(n for s in self.sets
                                                               for n in (s.weight, *s.companions))))

    def project(self, tensors: Mapping[str, Tensor], sparsity: float) -> Projection:
        masks: dict[str, Tensor] = {}
        for s in self.sets:
            target = target_of(s, sparsity, self.scale)
            if not target:
                continue
            for fqn, mask in layer_masks(s, tensors, target, self.round_to).items():
                masks[fqn] = masks[fqn] & mask if fqn in masks else mask
        for fqn in self.names:
            masks.setdefault(fqn, torch.ones(tensors[fqn].shape, dtype=torch.bool, device=tensors[fqn].device))
        return Projection(masks)


@dataclass(frozen=True)
class WeightConstraint:
    """A per-tensor set on each named weight: ``shape``, ``irregular`` or ``"N:M"`` (mask-level)."""

    structure: str
    names: tuple[str, ...]

    def project(self, tensors: Mapping[str, Tensor], sparsity: float) -> Projection:
        return Projection({fqn: self.mask(tensors[fqn], sparsity) for fqn in self.names})

    def mask(self, x: Tensor, sparsity: float) -> Tensor:
        if self.structure == "shape":
            return P.shape_mask(x, P.kept_count(x[0].numel(), sparsity))
        if self.structure == "irregular":
            return P.irregular_mask(x, P.kept_count(x.numel(), sparsity))
        n, m = parse_n_m(self.structure)
        return P.n_m_mask(x, n, m)


@dataclass(frozen=True)
class SequentialConstraint:
    """Several sets projected in turn; masks are combined. In the intersection, not the nearest point."""

    parts: tuple[Constraint, ...]
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(dict.fromkeys(n for p in self.parts for n in p.names)))

    def project(self, tensors: Mapping[str, Tensor], sparsity: float) -> Projection:
        current = dict(tensors)
        masks: dict[str, Tensor] = {}
        keep = None
        for part in self.parts:
            proj = part.project({n: current[n] for n in part.names}, sparsity)
            for fqn, mask in proj.masks.items():
                masks[fqn] = masks[fqn] & mask if fqn in masks else mask
                current[fqn] = tensors[fqn] * masks[fqn]
            keep = proj.keep if keep is None else (keep if proj.keep is None else keep & proj.keep)
        return Projection(masks, keep)


def check_structure(structure: str) -> None:
    """Refuse an unknown structure (or part of a ``+`` combination) up front, naming it."""
    if not isinstance(structure, str) or not structure:
        raise InputError(f"admm.structure: expected a structure name, got {structure!r}")
    for part in structure.split("+"):
        if part not in STRUCTURES:
            parse_n_m(part)


def parse_n_m(structure: str) -> tuple[int, int]:
    try:
        n, m = (int(v) for v in structure.split(":"))
    except ValueError:
        raise InputError(f"admm.structure {structure!r}: expected one of {', '.join(STRUCTURES)} or 'N:M' such "
                         f"as '2:4', or several joined by '+' (e.g. 'filter+shape')") from None
    if not 0 < n <= m:
        raise InputError(f"structure {structure!r}: N:M needs 0 < N <= M")
    return n, m


def group_parameter_names(module: nn.Module, groups: Sequence[PruningGroup]) -> tuple[str, ...]:
    """Trainable parameters that belong to a prunable group (buffers such as running stats are not W)."""
    params = {n for n, p in module.named_parameters() if p.requires_grad}
    return tuple(sorted({m.fqn for g in groups if g.num_prunable for m in g.members if m.fqn in params}))


def weight_names(module: nn.Module) -> tuple[str, ...]:
    """The weights of every conv and linear layer: what mask-level structures constrain."""
    return tuple(f"{name}.weight" if name else "weight" for name, m in module.named_modules()
                 if has_trait(m, Trait.WEIGHT_LAYER) and m.weight is not None and m.weight.requires_grad)


def build_constraint(structure: str, module: nn.Module, groups: Sequence[PruningGroup] | None = None,
                     num_labels: int = 0, *, round_to: int = 1, min_channels: int = 1, exact: bool = False,
                     scale: Mapping[int, float] | None = None) -> Constraint:
    """The constraint for a plan's ``structure``; ``+`` combines several sequentially
    (e.g. ``"filter+shape"``). ``scale``: per-group targets relative to the run's (group and per-layer
    sets). Per-layer sets need ``module`` to be the traced GraphModule the groups were analysed on."""
    parts = structure.split("+")
    if len(parts) > 1:
        return SequentialConstraint(tuple(build_constraint(p, module, groups, num_labels, round_to=round_to,
                                                           min_channels=min_channels, exact=exact, scale=scale)
                                          for p in parts))
    if structure in GROUP_STRUCTURES:
        if groups is None:
            raise InputError(f"structure {structure!r} needs the channel analysis (pruning groups)")
        return GroupConstraint(groups, num_labels, group_parameter_names(module, groups), round_to,
                               min_channels, exact, scale)
    if structure in LAYER_STRUCTURES:
        if groups is None or not isinstance(module, fx.GraphModule):
            raise InputError(f"structure {structure!r} needs the traced module and its pruning groups")
        return LayerConstraint(tuple(layer_sets(structure, module, groups, exact)), scale, round_to)
    if structure not in WEIGHT_STRUCTURES:
        parse_n_m(structure)
    return WeightConstraint(structure, weight_names(module))
