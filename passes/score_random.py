"""score-random: i.i.d. uniform per-weight scores (seeded), the baseline; channel scores are their
sums. Preconditions: ``groups``. Effects: ``scores:random``, ``weight-scores:random``."""

from __future__ import annotations

from dataclasses import dataclass

from graphprune.passes import Pass, Stage
from graphprune.scoring import random_scores
from graphprune.scoring.store import record
from graphprune.state import CompileState


@dataclass(frozen=True)
class ScoreRandom(Pass):
    name = "score-random"
    requires = frozenset({"groups"})
    provides = frozenset({"scores:random", "weight-scores:random"})
    stage = Stage.SCORE
    seed: int = 0

    def run(self, state: CompileState) -> CompileState:
        return record(state, self.name, "random", lambda: random_scores(state.gm, self.seed), seed=self.seed)
