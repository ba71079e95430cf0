"""Pruning groups: the unit a pruning decision is made for.

A channel is a connected set of elements (after the analysis' unions). Channels that appear in the
same parameter dim belong to the same group (they compete for the same layer's width). A group lists
its parameter members with, per member index, which of the group's channels it carries, and per
channel whether it may be removed (anchored in an activation, not frozen) and why not.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from graphprune.channels.analysis import ChannelAnalysis


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

    @property
    def size(self) -> int:
        return len(self.labels)

    @property
    def num_prunable(self) -> int:
        return int(self.prunable.sum())

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


def _reasons(notes, labels: np.ndarray, mask_size: int) -> tuple[np.ndarray, dict[int, dict[str, set[str]]]]:
    hit = np.zeros(mask_size, dtype=bool)
    per_label: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for note in notes:
        labs = np.unique(labels[note.ids])
        hit[labs] = True
        for lab in labs:
            per_label[int(lab)][note.reason].add(note.node)
    return hit, per_label


def build_groups(analysis: ChannelAnalysis) -> ChannelGraph:
    table = analysis.table
    labels = table.resolve()
    n_labels = int(labels.max()) + 1 if len(labels) else 0
    anchored = np.zeros(n_labels, dtype=bool)
    anchored[labels[table.anchored()]] = True
    frozen, frozen_why = _reasons(table.frozen, labels, n_labels)
    inexact, inexact_why = _reasons(table.inexact, labels, n_labels)

    members = list(table.members.values())
    member_labels = [labels[m.ids] for m in members]
    a = np.concatenate([ml[:-1] for ml in member_labels] or [np.zeros(0, np.int64)])
    b = np.concatenate([ml[1:] for ml in member_labels] or [np.zeros(0, np.int64)])
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n_labels, n_labels))
    _, group_of = connected_components(graph, directed=False)

    by_group: dict[int, list[int]] = defaultdict(list)
    for i, ml in enumerate(member_labels):
        by_group[int(group_of[ml[0]])].append(i)
    groups = []
    for _, member_ids in sorted(by_group.items()):
        labs = np.unique(np.concatenate([member_labels[i] for i in member_ids]))
        position = {int(lab): k for k, lab in enumerate(labs)}
        gmembers = [GroupMember(members[i].fqn, members[i].dim,
                                np.array([position[int(x)] for x in member_labels[i]], dtype=np.int64))
                    for i in member_ids]
        prunable = anchored[labs] & ~frozen[labs]
        groups.append(PruningGroup(
            index=len(groups), labels=labs, members=gmembers, prunable=prunable, inexact=inexact[labs],
            frozen_reasons=_merge(frozen_why, labs), inexact_reasons=_merge(inexact_why, labs),
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


def _merge(why: dict[int, dict[str, set[str]]], labs: np.ndarray) -> dict[str, list[str]]:
    merged: dict[str, set[str]] = defaultdict(set)
    for lab in labs:
        for reason, nodes in why.get(int(lab), {}).items():
            merged[reason] |= nodes
    return {r: sorted(n) for r, n in merged.items()}
