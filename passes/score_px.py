"""score-px: PX (Path eXclusion, Iurada et al. CVPR 2024), pruning at initialisation that keeps the
paths carrying the NTK's trace. One round records the masked model's gates on a class-balanced batch
(``per_class`` examples of each class from ``state.data``), runs the gated data copy on ``x**2`` and
the squared-weight path-kernel copy on ones, and scores ``|dR/d(theta**2)| * theta**2`` with
``R = sum z1 * z2``; ``rounds`` rounds (100, as the paper) follow the exponential schedule to
``density`` (default ``1 - options.sparsity``) with a global threshold. The data copy computes with
the keep mask as weights (pruned weights 0, as the reference code); ``masked_data_copy = false``
gives the earlier all-ones data copy. BatchNorm, biases and non-ReLU gates: see
``graphprune.scoring.copies``. Preconditions: ``groups`` and ``state.data`` (checked at run time).
Effects: ``scores:px``, ``weight-scores:px`` (last round's scores)."""

from __future__ import annotations

from dataclasses import dataclass

from graphprune.passes import Pass, Stage
from graphprune.scoring import PathScorer, class_balanced_batch, iterate
from graphprune.scoring.store import density_for, need_data, record, state_masks
from graphprune.state import CompileState


@dataclass(frozen=True)
class ScorePx(Pass):
    name = "score-px"
    requires = frozenset({"groups"})
    provides = frozenset({"scores:px", "weight-scores:px"})
    stage = Stage.SCORE
    rounds: int = 100
    per_class: int = 10
    num_classes: int | None = None  # stop reading data once this many classes are full
    density: float | None = None
    masked_data_copy: bool = True  # pruned weights are 0 in z1's copy (the reference's behaviour)

    def run(self, state: CompileState) -> CompileState:
        need_data(state, self.name)
        x, y = class_balanced_batch(state.data, self.per_class, self.num_classes)

        def compute():
            scorer = PathScorer(state.gm, masked_data_copy=self.masked_data_copy)
            return iterate(lambda m: scorer.px(m, x), density_for(state, self.density), self.rounds,
                           state_masks(state))[0]

        return record(state, self.name, "px", compute, rounds=self.rounds, per_class=self.per_class,
                      batch=len(y), density=density_for(state, self.density),
                      masked_data_copy=self.masked_data_copy)
