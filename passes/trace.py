"""trace: torch.fx trace of the user's model plus fake-tensor value propagation.

Provides ``traced`` and ``shapes``. The user's module is deep-copied first: later passes resize
parameters in place on the copy, and the original must stay untouched."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from graphprune.passes import Pass
from graphprune.state import CompileState
from graphprune.trace import trace
from graphprune.values import propagate_counting


@dataclass(frozen=True)
class Trace(Pass):
    name = "trace"
    provides = frozenset({"traced", "shapes"})
    leaf_modules: tuple[type, ...] = field(default=())

    def run(self, state: CompileState) -> CompileState:
        gm = trace(state.model, self.leaf_modules, num_inputs=len(state.example_inputs))
        gm = copy.deepcopy(gm)
        values, macs = propagate_counting(gm, state.example_inputs)
        return state.with_(gm=gm, values=values, macs={**state.macs, "dense": macs})
