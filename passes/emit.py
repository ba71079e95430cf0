"""emit: write the state's module to files other toolchains load (``.pt2``, ``.onnx``, ``.py``), each
reloaded and compared with the module on the example inputs (``graphprune.export``).

Preconditions: ``traced`` (dense, pruned or fused: whatever the state holds). Effects: files on disk
(atomic writes) and ``artifacts["emit"] = {"files": [record, ...]}`` with each file's format, size,
parity (max-abs difference), whether its batch is dynamic (and if not, why, in ``notes``) and seconds.
The module is not changed. ``dynamic_batch`` comes from the plan's ``[emit] dynamic_batch``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphprune.export import ExportError, emit
from graphprune.passes import Pass, Stage, configure
from graphprune.state import CompileState


@dataclass(frozen=True)
class Emit(Pass):
    name = "emit"
    requires = frozenset({"traced"})
    provides = frozenset({"exported"})
    stage = Stage.EMIT
    default_for = frozenset({"exported"})
    paths: tuple[str, ...] = ()  # the suffix of each picks its format
    check: bool = True  # reload each file and record the max-abs difference
    opset: int | None = None  # ONNX opset (None: the exporter's default)
    dynamic_batch: bool = True  # .pt2/.onnx with a dynamic dim 0 (static, with a note, where it cannot be)

    @classmethod
    def from_plan(cls, plan: Any, options: Mapping[str, Any], where: str) -> Emit:
        """The plan's ``[emit] dynamic_batch``, with ``[passes.emit]`` options over it."""
        base = cls() if plan is None else cls(dynamic_batch=plan.emit.dynamic_batch)
        return configure(base, options, where, plan)

    def for_goal(self, plan: Any) -> Emit:
        """The goal ``exported`` is the plan's ``[emit] path`` (and format): those are the files to write."""
        return dataclasses.replace(self, paths=plan.emit.resolved())

    def run(self, state: CompileState) -> CompileState:
        if not self.paths:
            raise ExportError("emit: no output paths (set [passes.emit] paths = [\"model.onnx\", ...] in the plan, "
                              "or --out on the command line)")
        records = [emit(state.gm, state.example_inputs, path, check=self.check, opset=self.opset,
                        dynamic_batch=self.dynamic_batch).to_dict() for path in self.paths]
        return state.with_(artifacts={**state.artifacts, "emit": {"files": records}})
