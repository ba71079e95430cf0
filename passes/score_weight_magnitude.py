"""score-weight-magnitude: per-weight ``|theta| ** p`` of the (masked) conv/linear weights; a channel
scores the sum over its slices (its L1 norm for p=1). ``score-magnitude`` gives the norm-based
channel scores ``l1``/``l2``; this pass gives the per-weight form irregular masks need.
Preconditions: ``groups``. Effects: ``scores:magnitude``, ``weight-scores:magnitude``."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from graphprune.passes import Pass, Stage
from graphprune.scoring import magnitude_scores
from graphprune.scoring.store import record, state_masks
from graphprune.state import CompileState


@dataclass(frozen=True)
class ScoreWeightMagnitude(Pass):
    name = "score-weight-magnitude"
    requires = frozenset({"groups"})
    provides = frozenset({"scores:magnitude", "weight-scores:magnitude"})
    stage = Stage.SCORE
    criterion_aliases = MappingProxyType({"l1": "magnitude", "l2": "magnitude"})  # both are |w| per weight
    p: int = 1

    def run(self, state: CompileState) -> CompileState:
        return record(state, self.name, "magnitude",
                      lambda: magnitude_scores(state.gm, state_masks(state), self.p), p=self.p)
