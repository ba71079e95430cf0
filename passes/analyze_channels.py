"""analyze-channels: the channel graph and its pruning groups (an analysis: the graph is not touched).

Where the plan has a ``structure = "heads"`` rule, the reshapes into attention heads that rule governs
are analysed split by whole heads (a second analysis, ``graphprune.channels.heads``)."""

from __future__ import annotations

from dataclasses import dataclass

from graphprune.channels.analysis import analyze_until_stable
from graphprune.channels.groups import build_groups
from graphprune.channels.heads import head_split_nodes
from graphprune.passes import Pass, Stage
from graphprune.plan.selectors import assign_rules
from graphprune.state import CompileState


@dataclass(frozen=True)
class AnalyzeChannels(Pass):
    name = "analyze-channels"
    requires = frozenset({"traced", "shapes", "canonical"})
    provides = frozenset({"groups"})
    stage = Stage.ANALYZE
    default_for = reruns = frozenset({"groups"})

    def run(self, state: CompileState) -> CompileState:
        analysis = analyze_until_stable(state.gm, state.values)
        channels = build_groups(analysis)
        plan = state.plan
        if plan is not None and any(r.structure == "heads" for r in plan.rules) and analysis.table.spreads:
            assigned = assign_rules(plan, channels.groups, dict(state.gm.named_modules()))
            governed = [r is not None and r.structure == "heads" for r in assigned]
            splits = head_split_nodes(analysis, channels, governed)
            if splits:
                analysis = analyze_until_stable(state.gm, state.values, splits)
                channels = build_groups(analysis)
        return state.with_(analysis=analysis, channels=channels)
