"""graphprune passes inside torch.fx's ``PassManager``.

``PassManager`` hands each pass a GraphModule and expects a ``PassResult``; graphprune passes need a
CompileState (shapes, groups, scores). ``FxPass`` keeps that state in a shared ``StateCarrier``: when it
receives the GraphModule the previous graphprune pass returned, it continues that state; any other
GraphModule starts a fresh state by tracing it. Analyses a pass requires are (re-)run first, so a
``PassManager`` list needs only the transformations."""

from __future__ import annotations

from typing import Any

import torch.fx as fx
from torch.fx.passes.infra.pass_base import PassBase, PassResult

from graphprune.pipeline import StateCarrier, ensure, run_pass
from graphprune.state import CompileState


class FxPass(PassBase):
    """One graphprune pass (any ``graphprune.passes.Pass``) as a torch.fx ``PassBase``."""

    def __init__(self, graphprune_pass: Any, carrier: StateCarrier | None = None):
        super().__init__()
        if carrier is None:
            raise TypeError(f"{graphprune_pass.name}.as_fx_pass(carrier) needs a StateCarrier holding the "
                            "example inputs: StateCarrier((example_input,))")
        self.graphprune_pass = graphprune_pass
        self.carrier = carrier
        self.__name__ = graphprune_pass.label()  # PassManager logs passes by __name__

    def _state_for(self, gm: fx.GraphModule) -> CompileState:
        state = self.carrier.state
        if state is None or state.gm is not gm:
            state = CompileState(self.carrier.name, gm, self.carrier.example_inputs)
        return ensure(state, self.graphprune_pass.requires | frozenset({"traced"}), self.graphprune_pass.label())

    def call(self, graph_module: fx.GraphModule) -> PassResult:
        state = self._state_for(graph_module)
        before = state.gm
        state = run_pass(state, self.graphprune_pass, "torch.fx PassManager")
        self.carrier.state = state
        return PassResult(state.gm, modified=state.gm is not graph_module or state.gm is not before
                          or bool(self.graphprune_pass.invalidates))

    def __repr__(self) -> str:
        return f"FxPass({self.graphprune_pass.label()})"


def fx_passes(passes: list[Any], example_inputs: tuple[Any, ...]) -> list[FxPass]:
    """Adapters sharing one state, ready for ``PassManager(passes=fx_passes([...], inputs))``."""
    carrier = StateCarrier(example_inputs)
    return [FxPass(p, carrier) for p in passes]
