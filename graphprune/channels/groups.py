"""Pruning groups: the unit a pruning decision is made for.

A channel is a connected set of elements (after the analysis' unions). Channels that appear in the
same parameter dim belong to the same group (they compete for the same layer's width). A group lists
its parameter members with, per member index, which of the group's channels it carries, and per
channel whether it may be removed (anchored in an activation, not frozen) and why not.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from graphprune.channels.analysis import ChannelAnalysis
from graphprune.channels.elements import components


@dataclass(frozen=True)
class GroupMember:
    fqn: str
    dim: int
    channel: np.ndarray  # per index along dim: index into the group's channels


@dataclass
class PruningGroup:
    index: int
    labels: np.ndarray  # global channel labels, one per group channel
    members: list[GroupMember]
    prunable: np.ndarray  # bool per channel
    inexact: np.ndarray  # bool per channel: removing it changes a statistic (LayerNorm, GroupNorm(1, C))
    frozen_reasons: dict[str, list[str]] = field(default_factory=dict)  # reason -> nodes
    inexact_reasons: dict[str, list[str]] = field(default_factory=dict)
    divisor: int = 1
    heads: bool = False  # its channels are whole attention heads (a reshape split by heads carries them)

    @property
    def size(self) -> int:
        return len(self.labels)

    @property
    def num_prunable(self) -> int:
        return int(self.prunable.sum())

    @cached_property
    def producers(self) -> list[np.ndarray]:
        """The group's channels split by which members carry them, in order of first channel.

        Channels carried by the same members came from the same producer: a dense block's group holds
        the block input plus every layer's new channels, and layer k's channels are exactly those in
        layer k's output conv and every later consumer. Where every member carries every channel
        (residual streams, plain convs) this is one part."""
        carried = np.zeros((len(self.members), self.size), dtype=bool)
        for i, m in enumerate(self.members):
            carried[i, m.channel] = True
        if carried.all():
            return [np.arange(self.size)]
        packed = np.ascontiguousarray(np.packbits(carried, axis=0).T)  # one byte string per channel
        signature = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
        _, first, part = np.unique(signature, return_index=True, return_inverse=True)
        part = np.asarray(part).reshape(-1)
        return [np.flatnonzero(part == p) for p in np.argsort(first, kind="stable")]

    def describe(self) -> str:
        names = sorted({m.fqn for m in self.members})
        head = ", ".join(names[:4]) + (f", +{len(names) - 4}" if len(names) > 4 else "")
        return head


@dataclass
class ChannelGraph:
    """Resolved channels and groups, plus the element -> channel map removal needs."""

    labels: np.ndarray  # element -> channel label
    groups: list[PruningGroup]
    frozen: dict[str, list[str]]  # reason -> node names (all frozen notes)
    unknown_ops: list[tuple[str, str]]
    inexact: dict[str, list[str]]


def _hit(notes, labels: np.ndarray, n_labels: int) -> np.ndarray:
    hit = np.zeros(n_labels, dtype=bool)
    for note in notes:
        hit[labels[note.ids]] = True
    return hit


def _group_reasons(notes, labels: np.ndarray, label_group: np.ndarray, n_groups: int) -> list[dict[str, list[str]]]:
    """Per group: reason -> sorted nodes of every note touching one of its channels. Reasons are
    ordered as a walk over the group's channels in label order meets them (notes in order)."""
    found: list[dict[str, list]] = [{} for _ in range(n_groups)]  # reason -> [(first label, note), nodes]
    for k, note in enumerate(notes):
        labs = np.unique(labels[note.ids])
        groups, first = np.unique(label_group[labs], return_index=True)
        for g, lab in zip(groups.tolist(), labs[first].tolist()):
            if g < 0:
                continue
            entry = found[g].setdefault(note.reason, [(lab, k), set()])
            entry[0] = min(entry[0], (lab, k))
            entry[1].add(note.node)
    return [{r: sorted(e[1]) for r, e in sorted(per.items(), key=lambda item: item[1][0])} for per in found]


def _labels_by_group(label_group: np.ndarray, n_groups: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Each group's channel labels in ascending order, and every label's index within its group
    (one stable sort instead of a unique + search per group)."""
    position = np.zeros(len(label_group), dtype=np.int64)
    if n_groups == 0:
        return [], position
    order = np.argsort(label_group, kind="stable")
    order = order[label_group[order] >= 0]  # labels outside every group sort first (-1)
    counts = np.bincount(label_group[order], minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    position[order] = np.arange(len(order), dtype=np.int64) - np.repeat(starts, counts)
    return np.split(order, starts[1:]), position


def build_groups(analysis: ChannelAnalysis) -> ChannelGraph:
    table = analysis.table
    labels = table.resolve()
    n_labels = int(labels.max()) + 1 if len(labels) else 0
    anchored = np.zeros(n_labels, dtype=bool)
    anchored[labels[table.anchored()]] = True
    frozen = _hit(table.frozen, labels, n_labels)
    inexact = _hit(table.inexact, labels, n_labels)
    head = np.zeros(n_labels, dtype=bool)
    for ids in table.heads:
        head[labels[ids]] = True

    members = list(table.members.values())
    member_labels = [labels[m.ids] for m in members]
    a = np.concatenate([ml[:-1] for ml in member_labels] or [np.zeros(0, np.int64)])
    b = np.concatenate([ml[1:] for ml in member_labels] or [np.zeros(0, np.int64)])
    group_of = components(a, b, n_labels)

    by_group: dict[int, list[int]] = defaultdict(list)
    for i, ml in enumerate(member_labels):
        by_group[int(group_of[ml[0]])].append(i)
    order = sorted(by_group)
    component_index = np.full(len(group_of) + 1, -1, dtype=np.int64)
    component_index[order] = np.arange(len(order))
    label_group = component_index[group_of] if n_labels else np.zeros(0, np.int64)
    frozen_why = _group_reasons(table.frozen, labels, label_group, len(order))
    inexact_why = _group_reasons(table.inexact, labels, label_group, len(order))
    group_labels, position = _labels_by_group(label_group, len(order))
    groups = []
    for component, labs in zip(order, group_labels):
        member_ids = by_group[component]
        gmembers = [GroupMember(members[i].fqn, members[i].dim, position[member_labels[i]]) for i in member_ids]
        prunable = anchored[labs] & ~frozen[labs]
        groups.append(PruningGroup(
            index=len(groups), labels=labs, members=gmembers, prunable=prunable, inexact=inexact[labs],
            frozen_reasons=frozen_why[len(groups)], inexact_reasons=inexact_why[len(groups)],
            heads=bool(head[labs].any()),
        ))
    all_frozen: dict[str, set[str]] = defaultdict(set)
    for note in table.frozen:
        all_frozen[note.reason].add(note.node)
    all_inexact: dict[str, set[str]] = defaultdict(set)
    for note in table.inexact:
        all_inexact[note.reason].add(note.node)
    return ChannelGraph(
        labels=labels, groups=groups,
        frozen={r: sorted(n) for r, n in all_frozen.items()},
        unknown_ops=[(u.node, u.op) for u in analysis.unknown],
        inexact={r: sorted(n) for r, n in all_inexact.items()},
    )
