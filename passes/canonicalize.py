"""canonicalize: inline static-shape decompositions of opaque functions (``graphprune.inline``) and
rewrite channel permutations written as reshape chains into ``index_select``
(``graphprune.canonicalize``), then re-propagate shapes. Semantics-preserving. The rewrite happens on a
copy of the state's GraphModule (``graphprune.copy_on_write``); with nothing to rewrite the state is
returned as it was."""

from __future__ import annotations

from dataclasses import dataclass

from graphprune.canonicalize import fold_channel_permutations
from graphprune.copy_on_write import writable
from graphprune.inline import inline_static_decompositions
from graphprune.passes import Pass, Stage
from graphprune.state import CompileState
from graphprune.values import propagate_counting


@dataclass(frozen=True)
class Canonicalize(Pass):
    name = "canonicalize"
    requires = frozenset({"traced", "shapes"})
    provides = frozenset({"canonical"})
    stage = Stage.CANONICALIZE
    default_for = reruns = frozenset({"canonical"})

    def run(self, state: CompileState) -> CompileState:
        gm, values = writable(state.gm), state.values
        changed = inline_static_decompositions(gm, values)
        if changed:
            values = propagate_counting(gm, state.example_inputs)[0]
        changed += fold_channel_permutations(gm, values)
        if not changed:
            return state
        values, _ = propagate_counting(gm, state.example_inputs)
        return state.with_(gm=gm, values=values)
