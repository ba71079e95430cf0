"""score-bn-scale: network slimming's ``|gamma|`` of the BatchNorm after each conv/linear, a
channel-level criterion (broadcast over the filter for irregular masks; structured scores sum
``|gamma|`` over the group's producing layers). Layers without a following BatchNorm use their
filters' mean ``|theta|``. Preconditions: ``groups``. Effects: ``scores:bn-scale``,
``weight-scores:bn-scale``."""

from __future__ import annotations

from dataclasses import dataclass

from graphprune.passes import Pass, Stage
from graphprune.scoring import bn_scale_scores
from graphprune.scoring.store import record, state_masks
from graphprune.state import CompileState


@dataclass(frozen=True)
class ScoreBnScale(Pass):
    name = "score-bn-scale"
    requires = frozenset({"groups"})
    provides = frozenset({"scores:bn-scale", "weight-scores:bn-scale"})
    stage = Stage.SCORE

    def run(self, state: CompileState) -> CompileState:
        return record(state, self.name, "bn-scale", lambda: bn_scale_scores(state.gm, state_masks(state)),
                      channel_level=True)
