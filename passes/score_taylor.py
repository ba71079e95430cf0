"""score-taylor: first-order Taylor importance ``mean over batches of (theta * dL/dtheta)**2`` on
``state.data``. Preconditions: ``groups`` and ``state.data`` (checked at run time). Effects: ``scores:taylor``,
``weight-scores:taylor``."""

from __future__ import annotations

from dataclasses import dataclass

from graphprune.passes import Pass, Stage
from graphprune.scoring import taylor_scores
from graphprune.scoring.store import need_data, record, state_masks
from graphprune.state import CompileState


@dataclass(frozen=True)
class ScoreTaylor(Pass):
    name = "score-taylor"
    requires = frozenset({"groups"})
    provides = frozenset({"scores:taylor", "weight-scores:taylor"})
    stage = Stage.SCORE
    batches: int = 1
    train: bool = False  # True: BatchNorm uses batch statistics (in a private copy)

    def run(self, state: CompileState) -> CompileState:
        need_data(state, self.name)
        return record(state, self.name, "taylor",
                      lambda: taylor_scores(state.gm, state.data, state_masks(state), batches=self.batches,
                                            train=self.train), batches=self.batches)
