"""The pass protocol: a pass names the facts it needs and makes, and maps a CompileState to a new one.

Facts are plain strings (``traced``, ``shapes``, ``groups``, ``scores:l2``, ``keep``, ``removed``).
Ordering comes from these declarations; ``run_pipeline`` refuses a pass whose requirements are not
met and re-raises any failure with the pass name and the passes already run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from graphprune.errors import GraphpruneError
from graphprune.state import CompileState

PASSES: dict[str, type[Pass]] = {}


@dataclass(frozen=True)
class Pass:
    name: ClassVar[str] = ""
    requires: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset()
    invalidates: ClassVar[frozenset[str]] = frozenset()

    def run(self, state: CompileState) -> CompileState:
        raise NotImplementedError

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            PASSES[cls.name] = cls


class PipelineError(GraphpruneError):
    """A pass failed, or was scheduled before the facts it requires."""


def run_pipeline(state: CompileState, passes: Iterable[Pass]) -> CompileState:
    for p in passes:
        missing = p.requires - state.facts
        ran = [name for name, _ in state.history]
        if missing:
            raise PipelineError(f"pass '{p.name}' requires {sorted(missing)}; passes run so far: {ran}")
        start = time.perf_counter()
        try:
            new = p.run(state)
        except GraphpruneError:
            raise
        except Exception as exc:
            raise PipelineError(f"pass '{p.name}' failed after {ran}: {type(exc).__name__}: {exc}") from exc
        facts = (state.facts - p.invalidates) | p.provides
        state = new.with_(facts=frozenset(facts),
                          history=(*state.history, (p.name, time.perf_counter() - start)))
    return state
