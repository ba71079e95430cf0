"""canonicalize: rewrite channel permutations written as reshape chains into ``index_select``
(see ``graphprune.canonicalize``), then re-propagate shapes. Semantics-preserving."""

from __future__ import annotations

from dataclasses import dataclass

from graphprune.canonicalize import fold_channel_permutations
from graphprune.passes import Pass
from graphprune.state import CompileState
from graphprune.values import propagate_counting


@dataclass(frozen=True)
class Canonicalize(Pass):
    name = "canonicalize"
    requires = frozenset({"traced", "shapes"})
    provides = frozenset({"canonical"})

    def run(self, state: CompileState) -> CompileState:
        if not fold_channel_permutations(state.gm, state.values):
            return state
        values, _ = propagate_counting(state.gm, state.example_inputs)
        return state.with_(values=values)
