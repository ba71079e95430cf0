"""score-grasp: GraSP's ``theta * (H g)`` (signed; high = keep) on ``state.data``, logits divided by
``temperature``. Preconditions: ``groups`` and ``state.data`` (checked at run time). Effects: ``scores:grasp``,
``weight-scores:grasp``."""

from __future__ import annotations

from dataclasses import dataclass

from graphprune.passes import Pass, Stage
from graphprune.scoring import grasp_scores
from graphprune.scoring.store import need_data, record, state_masks
from graphprune.state import CompileState


@dataclass(frozen=True)
class ScoreGrasp(Pass):
    name = "score-grasp"
    requires = frozenset({"groups"})
    provides = frozenset({"scores:grasp", "weight-scores:grasp"})
    stage = Stage.SCORE
    batches: int = 1
    temperature: float = 200.0

    def run(self, state: CompileState) -> CompileState:
        need_data(state, self.name)
        return record(state, self.name, "grasp",
                      lambda: grasp_scores(state.gm, state.data, state_masks(state), batches=self.batches,
                                           temperature=self.temperature),
                      batches=self.batches, temperature=self.temperature)
