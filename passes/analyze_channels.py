"""analyze-channels: the channel graph and its pruning groups (an analysis: the graph is not touched).

Where the plan has a ``structure = "heads"`` rule, the reshapes into attention heads that rule governs
are analysed split by whole heads (a second analysis, ``graphprune.channels.heads``); the report's
``artifacts["analyze-channels"]["head_splits"]`` names them, so ``graphprune.apply`` can replay the split.
With ``[allocate] outputs = "zero-fill"`` the channels of the output leaves it names are not frozen
(``graphprune.channels.outputs``)."""

from __future__ import annotations

from dataclasses import dataclass

from graphprune.channels.analysis import ChannelAnalysis, analyze_until_stable
from graphprune.channels.groups import ChannelGraph, build_groups
from graphprune.channels.heads import head_split_nodes
from graphprune.channels.outputs import check_outputs
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
    head_splits: tuple[str, ...] | None = None  # reshapes to split by heads; None: those the plan's heads rules govern

    def run(self, state: CompileState) -> CompileState:
        outputs = state.options.outputs
        check_outputs(state.gm.graph, outputs, state.plan)
        analysis = analyze_until_stable(state.gm, state.values, outputs=outputs)
        channels = build_groups(analysis)
        splits = self._splits(state, analysis, channels)
        if not splits:
            return state.with_(analysis=analysis, channels=channels)
        analysis = analyze_until_stable(state.gm, state.values, splits, outputs)
        artifacts = {**state.artifacts, self.name: {"head_splits": sorted(splits)}}
        return state.with_(analysis=analysis, channels=build_groups(analysis), artifacts=artifacts)

    def _splits(self, state: CompileState, analysis: ChannelAnalysis, channels: ChannelGraph) -> frozenset[str]:
        if self.head_splits is not None:
            return frozenset(self.head_splits) & frozenset(analysis.table.spreads)
        plan = state.plan
        if plan is None or not any(r.structure == "heads" for r in plan.rules) or not analysis.table.spreads:
            return frozenset()
        assigned = assign_rules(plan, channels.groups, state.selectable_modules())
        return head_split_nodes(analysis, channels, [r is not None and r.structure == "heads" for r in assigned])
