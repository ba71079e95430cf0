"""Which reshapes are split by whole attention heads, for ``structure = "heads"``.

Attention reshapes a projection's channel dim into ``(heads, head_dim)``. Analysed as it is by default
(``graphprune.ops.reshape``), head_dim index j of every head is one channel: removing it shrinks
head_dim alike in every head. Split by heads, every channel of one head (its q, k and v rows, and the
output projection's columns that read it) is one channel instead: removing it removes the head, and
head_dim stays. Which reading a reshape gets is the plan's choice, so it is made per reshape: a first
analysis lists the reshapes that spread a channel dim (``ElementTable.spreads``) and the groups their
inputs belong to; those whose group a heads rule governs are split by heads in a second analysis.

Grouped-query attention needs nothing of its own: the key/value heads are repeated for their query
group (``expand`` + ``reshape`` or ``repeat_interleave``, as Llama does) before they meet the query
heads in the attention, which couples query head i with the key/value head it reads, index by index.
So one channel is a key/value head together with its whole query group, and removing it keeps every
remaining group whole (the repeat count is unchanged). The same holds for any capture whose reshape,
movement and attention ops carry these rules.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graphprune.channels.analysis import ChannelAnalysis
from graphprune.channels.groups import ChannelGraph


def head_split_nodes(analysis: ChannelAnalysis, graph: ChannelGraph, governed: Sequence[bool]) -> frozenset[str]:
    """The spreading reshapes whose input channels lie in a group with ``governed[group.index]``."""
    labels = graph.labels
    group_of = np.full(int(labels.max()) + 1 if len(labels) else 0, -1, dtype=np.int64)
    for group in graph.groups:
        group_of[group.labels] = group.index
    nodes = set()
    for node, blocks in analysis.table.spreads.items():
        groups = {int(g) for ids in blocks for g in group_of[labels[ids]] if g >= 0}
        if any(governed[g] for g in groups):
            nodes.add(node)
    return frozenset(nodes)
