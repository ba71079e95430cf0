"""trace: torch.fx trace of the user's model plus fake-tensor value propagation.

Provides ``traced`` and ``shapes``. The traced module gets a private module hierarchy whose tensors are
still the user's (copy-on-write): passes replace parameters, never write into them, and compile ends
by copying whatever is still shared, so the user's model is never mutated nor aliased."""

from __future__ import annotations

from dataclasses import dataclass, field

from graphprune.passes import Pass
from graphprune.state import CompileState
from graphprune.trace import private_hierarchy, trace
from graphprune.values import propagate_counting


@dataclass(frozen=True)
class Trace(Pass):
    name = "trace"
    provides = frozenset({"traced", "shapes"})
    leaf_modules: tuple[type, ...] = field(default=())

    def run(self, state: CompileState) -> CompileState:
        traced = trace(state.model, self.leaf_modules, num_inputs=len(state.example_inputs))
        gm = private_hierarchy(traced, owned_root=traced is not state.model)
        values, macs = propagate_counting(gm, state.example_inputs)
        return state.with_(gm=gm, values=values, macs={**state.macs, "dense": macs})
