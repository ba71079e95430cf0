"""trace: torch.fx trace of the user's model plus fake-tensor value propagation.

Provides ``traced`` and ``shapes``. The traced module gets a private module hierarchy whose tensors are
still the user's (copy-on-write): passes replace parameters, never write into them, and compile ends
by copying whatever is still shared, so the user's model is never mutated nor aliased."""

from __future__ import annotations

from dataclasses import dataclass, field

from graphprune.interface import inline_constant_inputs, restore_unused_state
from graphprune.passes import Pass, Stage
from graphprune.state import CompileState
from graphprune.trace import private_hierarchy, trace
from graphprune.values import propagate_counting


@dataclass(frozen=True)
class Trace(Pass):
    name = "trace"
    provides = frozenset({"traced", "shapes"})
    stage = Stage.CAPTURE
    default_for = frozenset({"traced", "shapes"})
    leaf_modules: tuple[type, ...] = field(default=())

    def run(self, state: CompileState) -> CompileState:
        traced = trace(state.model, self.leaf_modules, concrete_args=state.input_constants or None,
                       num_inputs=len(state.example_inputs))
        if traced is not state.model and state.input_constants:
            inline_constant_inputs(traced, state.model, state.input_constants)
        gm = private_hierarchy(traced, owned_root=traced is not state.model)
        restored = restore_unused_state(gm, state.model) if traced is not state.model else []
        values, macs = propagate_counting(gm, state.example_inputs)
        artifacts = {**state.artifacts, "trace": {"unused_state": restored}} if restored else state.artifacts
        return state.with_(gm=gm, values=values, macs={**state.macs, "dense": macs}, artifacts=artifacts)
