"""analyze-channels: the channel graph and its pruning groups (an analysis: the graph is not touched)."""

from __future__ import annotations

from dataclasses import dataclass

from graphprune.channels.analysis import analyze_until_stable
from graphprune.channels.groups import build_groups
from graphprune.passes import Pass, Stage
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
        return state.with_(analysis=analysis, channels=build_groups(analysis))
