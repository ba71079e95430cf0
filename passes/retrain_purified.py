"""retrain-purified: say what purification + unused-path removal (P-RM) added, and retrain when it changed
the model.

Preconditions: ``removed`` (its stage places it after removal, purification and the unused-path fixed
point, before ``finetune``, fusing and emitting) and, when it retrains, training data in
``state.data``. Effects: ``artifacts["prm"]`` holds the conv census before P-RM (what ``purify`` saw, or
without purification what the ``admm`` pass's removal left), after it (this pass's input) and the conv
compression of both (dense conv weight entries over entries present, and over non-zero entries), so the
amount P-RM adds is reported apart from ADMM's. When P-RM removed or zeroed anything (purification is
lossy) and ``epochs`` > 0, the model is retrained like ``finetune`` does (``RecoveryConfig``; masked:
``state.masks`` stay applied) on a copy with its own tensors; ``artifacts["prm"]["retrain"]`` is that
run's record. Its options are ``finetune``'s, with 2 epochs by default (``[passes.retrain-purified]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphprune.conv_census import compression, conv_census, conv_params
from graphprune.passes import Stage
from graphprune.state import CompileState
from passes.finetune import Finetune


def census_before(state: CompileState) -> dict[str, Any] | None:
    """The conv census before P-RM: purification's input, else what ADMM's removal left."""
    return state.artifacts.get("purify", {}).get("census") or state.artifacts.get("admm", {}).get("census")


@dataclass(frozen=True)
class RetrainPurified(Finetune):
    name = "retrain-purified"
    requires = frozenset({"removed"})  # its stage puts it after purify and the fixed point when both run
    provides = frozenset({"retrained-purified"})
    stage = Stage.RECOVER - 5
    epochs: float = 2.0

    def run(self, state: CompileState) -> CompileState:
        dense, before, after = conv_params(state.model), census_before(state), conv_census(state.gm)
        changed = before is not None and (after["conv_params"] < before["conv_params"]
                                          or after["conv_nonzero"] < before["conv_nonzero"])
        record: dict[str, Any] = {"conv_params_dense": dense, "before": before, "after": after,
                                  "compression_before": compression(dense, before),
                                  "compression_after": compression(dense, after), "changed": changed,
                                  "retrained_epochs": 0, "retrain": None}
        if changed and self.epochs > 0:
            trained = super().run(state)
            record.update(retrained_epochs=self.epochs, retrain=trained.artifacts["finetune"])
            state = state.with_(gm=trained.gm)
        return state.with_(artifacts={**state.artifacts, "prm": record})
