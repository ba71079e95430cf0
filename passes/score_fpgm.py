"""score-fpgm: filter pruning via geometric median. A filter's score is its distance to the
geometric median of its layer's filters (``approximate``: summed distance to all other filters);
channel-level like BN-scale. Preconditions: ``groups``. Effects: ``scores:fpgm``,
``weight-scores:fpgm``."""

from __future__ import annotations

from dataclasses import dataclass

from graphprune.passes import Pass, Stage
from graphprune.scoring import fpgm_scores
from graphprune.scoring.store import record, state_masks
from graphprune.state import CompileState


@dataclass(frozen=True)
class ScoreFpgm(Pass):
    name = "score-fpgm"
    requires = frozenset({"groups"})
    provides = frozenset({"scores:fpgm", "weight-scores:fpgm"})
    stage = Stage.SCORE
    approximate: bool = False

    def run(self, state: CompileState) -> CompileState:
        return record(state, self.name, "fpgm", lambda: fpgm_scores(state.gm, state_masks(state), self.approximate),
                      channel_level=True, approximate=self.approximate)
