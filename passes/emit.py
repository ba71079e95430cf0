"""emit: write the state's module to files other toolchains load (``.pt2``, ``.onnx``, ``.py``), each
reloaded and compared with the module on the example inputs (``graphprune.export``).

Preconditions: ``traced`` (dense, pruned or fused: whatever the state holds). Effects: files on disk
(atomic writes) and ``artifacts["emit"] = {"files": [record, ...]}`` with each file's format, size,
parity (max-abs difference) and seconds. The module is not changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphprune.export import ExportError, emit
from graphprune.passes import Pass
from graphprune.state import CompileState


@dataclass(frozen=True)
class Emit(Pass):
    name = "emit"
    requires = frozenset({"traced"})
    provides = frozenset({"exported"})
    paths: tuple[str, ...] = ()  # the suffix of each picks its format
    check: bool = True  # reload each file and record the max-abs difference
    opset: int | None = None  # ONNX opset (None: the exporter's default)

    def run(self, state: CompileState) -> CompileState:
        if not self.paths:
            raise ExportError("emit: no output paths (set [passes.emit] paths = [\"model.onnx\", ...] in the plan, "
                              "or --out on the command line)")
        records = [emit(state.gm, state.example_inputs, path, check=self.check, opset=self.opset).to_dict()
                   for path in self.paths]
        return state.with_(artifacts={**state.artifacts, "emit": {"files": records}})
