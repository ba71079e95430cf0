"""propagate-shapes: re-run fake-tensor value propagation on the current GraphModule.

Why: ``remove-channels`` changes every shape it touches and invalidates ``shapes``; a second round
(re-analyse, decide, remove again; unused-path removal to a fixed point) needs the shapes of the
pruned graph. Effects: ``values`` replaced; the graph is not touched. MACs of the current graph are
recorded as ``macs["pruned"]`` once something was removed (``dense`` stays the original count)."""

from __future__ import annotations

from dataclasses import dataclass

from graphprune.passes import Pass, Stage
from graphprune.state import CompileState
from graphprune.values import propagate_counting


@dataclass(frozen=True)
class PropagateShapes(Pass):
    name = "propagate-shapes"
    requires = frozenset({"traced"})
    provides = frozenset({"shapes"})
    stage = Stage.SHAPES
    reruns = frozenset({"shapes"})

    def run(self, state: CompileState) -> CompileState:
        values, macs = propagate_counting(state.gm, state.example_inputs)
        counts = {**state.macs, "pruned": macs} if state.kept else state.macs
        return state.with_(values=values, macs=counts)
