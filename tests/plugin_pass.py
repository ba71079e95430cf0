"""A third-party pass, registered through the ``graphprune.passes`` entry point in test_scheduler."""

from __future__ import annotations

from dataclasses import dataclass

from graphprune.passes import Pass
from graphprune.state import CompileState


@dataclass(frozen=True)
class DemoPlugin(Pass):
    name = "demo-plugin"
    requires = frozenset({"groups"})
    provides = frozenset({"demo"})
    factor: int = 1

    def run(self, state: CompileState) -> CompileState:
        return state.with_(artifacts={**state.artifacts, "demo": self.factor})
