"""score-snip: SNIP's connection sensitivity ``|theta * dL/dtheta|`` on ``state.data``; with
``rounds > 1`` iterative SNIP (re-scored on the masked model, exponential schedule to ``density``,
default ``1 - options.sparsity``). Preconditions: ``groups`` and ``state.data`` (checked at run
time). Effects: ``scores:snip``, ``weight-scores:snip``."""

from __future__ import annotations

from dataclasses import dataclass

from graphprune.passes import Pass, Stage
from graphprune.scoring import iterate, snip_scores
from graphprune.scoring.store import density_for, need_data, record, state_masks
from graphprune.state import CompileState


@dataclass(frozen=True)
class ScoreSnip(Pass):
    name = "score-snip"
    requires = frozenset({"groups"})
    provides = frozenset({"scores:snip", "weight-scores:snip"})
    stage = Stage.SCORE
    batches: int = 1
    rounds: int = 1
    density: float | None = None

    def run(self, state: CompileState) -> CompileState:
        need_data(state, self.name)
        def score(masks):
            return snip_scores(state.gm, state.data, masks, batches=self.batches)

        def compute():
            if self.rounds == 1:
                return score(state_masks(state))
            return iterate(score, density_for(state, self.density), self.rounds, state_masks(state))[0]

        return record(state, self.name, "snip", compute, batches=self.batches, rounds=self.rounds)
