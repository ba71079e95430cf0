"""Removal through a statistic over channels (LayerNorm, RMSNorm, a mean or variance over channels) with
``statistics = "exact"``: keep the statistic over the original width, so that removal stays exact.

Masked equivalence compares the pruned model with the dense one whose removed parameter slices are
zeroed. A statistic over channels reads the removed channels there, as whatever value they have at its
input; when that value is zero, the statistic of the kept channels over the *original* count (mean =
sum of the kept / C0, variance and RMS likewise) is exactly the dense one, and each op family declares
the rewrite that computes it (``OpSpec.statistics``, kernels in ``graphprune.ops.full_width``).

Zero is proved, never assumed: the liveness zero walk (``graphprune.liveness``) reads the graph's tensors
with exactly the removed slices zeroed (``graphprune.liveness.zeroed``: the masked dense model, without
copying it), following only the removed channels that some statistic reads, and a statistic is
rewritten only where it shows every removed channel zero at the statistic's input. Any other cut
statistic (a hand-written LayerNorm's ``(x - mean) ** 2``: a removed channel reads ``-mean`` there) stays
renormalised over the kept channels and is reported inexact with the reason. With ``statistics =
"renormalize"`` every cut statistic is renormalised and reported, as before the rewrite existed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch.fx as fx

from graphprune.channels.kept import KeptView
from graphprune.liveness.analysis import zero_labels
from graphprune.liveness.zeroed import Zeroed
from graphprune.ops.registry import lookup, node_key
from graphprune.state import CompileState

UNPROVED = "{reason} (kept renormalised: its removed channels are not provably zero at its input)"


@dataclass(frozen=True)
class StatisticCuts:
    """The cut statistics of one removal round, by node name."""

    full_width: frozenset[str] = frozenset()  # rewritten to keep the original width: exact
    renormalised: frozenset[str] = frozenset()  # exact mode asked, zero not proved: reported

    def reason(self, reason: str, node: str) -> str | None:
        """The inexact reason to report for a note at ``node`` (None: the cut is exact)."""
        if node in self.full_width:
            return None
        return UNPROVED.format(reason=reason) if node in self.renormalised else reason


def plan_statistics(state: CompileState, keep_element: np.ndarray, cuts: dict) -> StatisticCuts:
    """Which cut statistics become full width (``cuts``: fqn -> dim -> kept indices, this round's)."""
    if state.options.statistics != "exact":
        return StatisticCuts()
    nodes = {n.name: n for n in state.gm.graph.nodes}
    labels = state.channels.labels
    removed: dict[str, set[int]] = {}
    for note in state.analysis.table.inexact:
        gone = ~keep_element[note.ids]
        node = nodes.get(note.node)
        if not gone.any() or node is None or _rewrite(node, state.gm) is None:
            continue
        removed.setdefault(note.node, set()).update(int(c) for c in np.unique(labels[note.ids[gone]]))
    if not removed:
        return StatisticCuts()
    zero = zero_labels(state, set().union(*removed.values()), Zeroed(state.gm, cuts))
    proved = {n for n, labs in removed.items() if labs <= zero.get(_input(nodes[n]).name, set())}
    return StatisticCuts(frozenset(proved), frozenset(removed) - proved)


def keep_full_width(gm: fx.GraphModule, view: KeptView, cut: StatisticCuts) -> None:
    """Run each proved statistic's declared rewrite (after the nodes' baked sizes were rewritten)."""
    for node in list(gm.graph.nodes):
        if node.name in cut.full_width:
            _rewrite(node, gm)(node, view)


def _rewrite(node: fx.Node, gm: fx.GraphModule) -> object:
    if node.op not in ("call_function", "call_method", "call_module"):
        return None
    spec = lookup(node_key(node, gm))
    return spec.statistics if spec is not None else None


def _input(node: fx.Node) -> fx.Node:
    return node.args[0] if node.args else node.kwargs["input"]
