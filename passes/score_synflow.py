"""score-synflow: SynFlow, data-free, iterative: ``rounds`` rounds (exponential schedule to
``density``, default ``1 - options.sparsity``), each re-scoring the masked model on an all-ones
input in float64. Its weight scores are the last round's (a global threshold at ``density``
reproduces the iterative masks). Preconditions: ``groups``. Effects: ``scores:synflow``,
``weight-scores:synflow``."""

from __future__ import annotations

from dataclasses import dataclass

from graphprune.passes import Pass, Stage
from graphprune.scoring import PathScorer, iterate
from graphprune.scoring.store import density_for, record, state_masks
from graphprune.state import CompileState


@dataclass(frozen=True)
class ScoreSynflow(Pass):
    name = "score-synflow"
    requires = frozenset({"groups"})
    provides = frozenset({"scores:synflow", "weight-scores:synflow"})
    stage = Stage.SCORE
    rounds: int = 100
    density: float | None = None

    def run(self, state: CompileState) -> CompileState:
        shape = tuple(state.example_inputs[0].shape)

        def compute():
            scorer = PathScorer(state.gm)
            return iterate(lambda m: scorer.synflow(m, shape), density_for(state, self.density), self.rounds,
                           state_masks(state))[0]

        return record(state, self.name, "synflow", compute, rounds=self.rounds,
                      density=density_for(state, self.density))
