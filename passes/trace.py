"""trace: capture of the user's model (torch.fx trace, or torch.export) plus fake-tensor value propagation.

Provides ``traced`` and ``shapes``. ``capture`` picks the capture (``graphprune.capture``): ``"auto"``
(default: fx, and torch.export where fx cannot trace), ``"fx"`` or ``"export"``; a plan sets it with
``[passes.trace] capture = "export"``, ``compile(..., capture=...)`` as a keyword, and
``artifacts["trace"]`` records which capture ran and why. ``dynamic`` (``"auto"``: the batch and sequence dims, the
default; ``"all"``; ``"static"``) says which input sizes the export capture keeps symbolic
(``artifacts["trace"]["dynamic_dims"]`` lists them with their ranges), so the pruned graph runs at any
batch and sequence length the dense model does. The traced module gets a private module
hierarchy whose tensors are still the user's (copy-on-write): passes replace parameters, never write
into them, and compile ends by copying whatever is still shared, so the user's model is never mutated
nor aliased."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphprune.capture import CAPTURES, DYNAMIC, capture, check_capture, check_dynamic
from graphprune.errors import PlanError
from graphprune.interface import inline_constant_inputs, restore_unused_state
from graphprune.passes import Pass, Stage
from graphprune.state import CompileState
from graphprune.trace import private_hierarchy
from graphprune.values import propagate_counting


@dataclass(frozen=True)
class Trace(Pass):
    name = "trace"
    provides = frozenset({"traced", "shapes"})
    stage = Stage.CAPTURE
    default_for = frozenset({"traced", "shapes"})
    leaf_modules: tuple[type, ...] = field(default=())
    capture: str = "auto"
    dynamic: str = "auto"

    def __post_init__(self) -> None:
        check_capture(self.capture)
        check_dynamic(self.dynamic)

    @classmethod
    def from_plan(cls, plan: Any, options: Mapping[str, Any], where: str) -> Pass:
        """A plan's ``capture`` or ``dynamic`` outside the choices is a PlanError at its line."""
        for key, choices in (("capture", CAPTURES), ("dynamic", DYNAMIC)):
            value = options.get(key, "auto")
            if value not in choices:
                raise PlanError(f"{plan.source.where(f'{where}.{key}')}: expected one of "
                                f"{', '.join(repr(c) for c in choices)}, got {value!r}")
        return super().from_plan(plan, options, where)

    def run(self, state: CompileState) -> CompileState:
        traced, record = capture(state.model, state.example_inputs, self.capture, self.leaf_modules,
                                 state.input_constants or None, self.dynamic)
        if traced is not state.model and state.input_constants and record["capture"] == "fx":
            inline_constant_inputs(traced, state.model, state.input_constants)
        gm = private_hierarchy(traced, owned_root=traced is not state.model)
        restored = restore_unused_state(gm, state.model) if traced is not state.model else []
        values, macs = propagate_counting(gm, state.example_inputs)
        info = {**record, "unused_state": restored} if restored else record
        artifacts = {**state.artifacts, "trace": info}
        constants = {**(state.input_constants or {}), **record.get("constants", {})}  # the call the graph computes
        return state.with_(gm=gm, values=values, macs={**state.macs, "dense": macs}, artifacts=artifacts,
                           input_constants=constants)
