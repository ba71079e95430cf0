"""StructADMM's per-layer sets: filter-wise, channel-wise and shape-wise, each projected layer by layer.

The paper's structured sets constrain one layer at a time, unlike the coupled ``group`` set
(``projections.project_groups``), which zeroes a channel in every member of its pruning group at once:

- ``filter``: at most k rows of the layer's GEMM view (output channels) are non-zero. A filter's block is
  its row plus its bias entry and the entries of the per-channel norm that directly follows the layer
  (a zero filter followed by BatchNorm outputs β, not 0; zeroing γ and β with it makes the channel's
  output exactly zero, so the channel is dead and removal is lossless).
- ``channel``: at most k input channels (the layer's dim-1 slices, all kernel positions) are non-zero.
- ``shape``: at most k GEMM columns ((input channel, kh, kw) across every filter) are non-zero.

Each is "at most k non-zero blocks" of a partition of the layer's entries, so the exact projection keeps
the k blocks of largest L2 norm. A layer's dim takes part only when it belongs to a prunable pruning group
with a target (the group's rule ratio, as for ``group``), so the classifier's rows and the first layer's
image channels are left alone; channels the analysis froze are always kept (never zeroed, because they
could never be removed). Grouped and depthwise convs take part in ``filter`` only.

Zeroed blocks are mask-level; they become removal afterwards: a group channel whose every member slice is
zero is removed with the ``admm`` pass's keep decision, and what only the unused-path fixed point can see
(a filter zeroed while its consumers still read the channel, columns dead across a whole input channel)
is removed by ``remove-unused-paths`` / ``remove-channels``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import fx, nn

from graphprune.admm.projections import kept_count, top_k_mask
from graphprune.allocation import removable
from graphprune.channels.groups import PruningGroup
from graphprune.ops.registry import Trait, has_trait

Tensor = torch.Tensor
LAYER_STRUCTURES = ("filter", "channel", "shape")


@dataclass(frozen=True)
class LayerSet:
    """One layer's set: the weight, the dim its blocks run along, each index's block and whether the
    block may be zeroed, the companions zeroed with a filter, and the pruning group giving its target."""

    kind: str  # filter | channel | shape
    weight: str  # the layer's weight fqn
    block: np.ndarray  # per index along the dim (filter, channel) or per GEMM column (shape): block id
    free: np.ndarray  # per block: may be zeroed (its channel is removable)
    group: int  # the pruning group whose rule sets the target
    companions: tuple[str, ...] = ()  # filter: bias and the following norm's affine, indexed like the rows

    @property
    def blocks(self) -> int:
        return len(self.free)


def _members(groups: Sequence[PruningGroup]) -> dict[tuple[str, int], tuple[PruningGroup, np.ndarray]]:
    return {(m.fqn, m.dim): (g, m.channel) for g in groups for m in g.members}


def _following_norm(gm: fx.GraphModule, node: fx.Node) -> str | None:
    users = list(node.users)
    if len(users) == 1 and users[0].op == "call_module":
        if has_trait(gm.get_submodule(str(users[0].target)), Trait.PER_CHANNEL_NORM):
            return str(users[0].target)
    return None


def _companions(gm: fx.GraphModule, node: fx.Node, params: Mapping[str, nn.Parameter]) -> tuple[str, ...]:
    names = [f"{node.target}.bias"]
    norm = _following_norm(gm, node)
    if norm is not None:
        names += [f"{norm}.weight", f"{norm}.bias"]
    return tuple(n for n in names if n in params and params[n].requires_grad)


def _layer_set(kind: str, gm: fx.GraphModule, node: fx.Node, module: nn.Module, members, exact: bool,
               params) -> LayerSet | None:
    weight = f"{node.target}.weight"
    dim = 0 if kind == "filter" else 1
    found = members.get((weight, dim))
    if found is None or weight not in params or not params[weight].requires_grad:
        return None
    group, channel = found
    if not group.num_prunable or (dim == 1 and getattr(module, "groups", 1) != 1):
        return None
    can_remove = removable(group, exact)
    if kind == "filter":
        return LayerSet(kind, weight, np.arange(len(channel)), can_remove[channel], group.index,
                        _companions(gm, node, params))
    ids, block = np.unique(channel, return_inverse=True)  # dim-1 slices of one group channel form one block
    if kind == "channel":
        return LayerSet(kind, weight, block, can_remove[ids], group.index)
    per_column = int(np.prod(params[weight].shape[2:], dtype=np.int64))
    columns = np.arange(len(channel) * per_column)
    return LayerSet(kind, weight, columns, can_remove[channel].repeat(per_column), group.index)


def layer_sets(kind: str, gm: fx.GraphModule, groups: Sequence[PruningGroup], exact: bool = False) -> list[LayerSet]:
    """The ``kind`` set of every weight layer of ``gm`` whose constrained dim is in a prunable group."""
    if kind not in LAYER_STRUCTURES:
        raise ValueError(f"unknown per-layer structure {kind!r}")
    members, params = _members(groups), dict(gm.named_parameters())
    out = []
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        module = gm.get_submodule(str(node.target))
        if has_trait(module, Trait.FILTER_ROWS) and (s := _layer_set(kind, gm, node, module, members, exact, params)):
            out.append(s)
    return out


def _energy(s: LayerSet, tensors: Mapping[str, Tensor]) -> np.ndarray:
    """Squared L2 norm of every block (what zeroing it adds to ||X - Z||^2)."""
    w = tensors[s.weight].detach().double()
    sq = w * w
    if s.kind == "shape":
        per_index = sq.reshape(sq.shape[0], -1).sum(0).cpu().numpy()
    else:
        dim = 0 if s.kind == "filter" else 1
        per_index = sq.sum(dim=[d for d in range(sq.ndim) if d != dim]).cpu().numpy()
        for name in s.companions:
            c = tensors[name].detach().double()
            per_index = per_index + (c * c).cpu().numpy()
    energy = np.zeros(s.blocks)
    np.add.at(energy, s.block, per_index)
    return energy


def kept_blocks(s: LayerSet, tensors: Mapping[str, Tensor], sparsity: float, round_to: int = 1) -> np.ndarray:
    """Bool per block: the frozen blocks plus the largest-norm free blocks, ``kept_count`` in all, rounded
    up to a multiple of ``round_to`` for the filter and channel sets (their blocks become the layer's
    width; a shape set's blocks are columns, which no width is a count of)."""
    energy = _energy(s, tensors)
    kept = ~s.free
    count = kept_count(s.blocks, sparsity)
    if round_to > 1 and s.kind != "shape":
        count = min(s.blocks, math.ceil(count / round_to) * round_to)
    budget = count - int(kept.sum())
    if budget > 0:
        free = np.flatnonzero(s.free)
        chosen = top_k_mask(torch.from_numpy(energy[free]), budget).numpy()
        kept[free[chosen]] = True
    return kept


def layer_masks(s: LayerSet, tensors: Mapping[str, Tensor], sparsity: float, round_to: int = 1) -> dict[str, Tensor]:
    """Bool masks (True = kept) of the layer's weight and, for a filter, its companions."""
    along = torch.from_numpy(kept_blocks(s, tensors, sparsity, round_to)[s.block])
    w = tensors[s.weight]
    if s.kind == "shape":
        mask = along.to(w.device).view(1, *w.shape[1:]).expand(w.shape)
    else:
        dim = 0 if s.kind == "filter" else 1
        shape = [1] * w.ndim
        shape[dim] = -1
        mask = along.to(w.device).view(shape).expand(w.shape)
    out = {s.weight: mask}
    for name in s.companions:
        out[name] = along.to(tensors[name].device).view(-1).expand(tensors[name].shape)
    return out


def target_of(s: LayerSet, sparsity: float, scale: Mapping[int, float] | None) -> float:
    """The layer's target: the run's, scaled by its group's rule (0: the layer is left alone)."""
    factor = 1.0 if scale is None else scale.get(s.group, 0.0)
    return min(sparsity * factor, 0.999) if math.isfinite(factor) else 0.0
