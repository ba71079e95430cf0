"""measure-latency: measured CPU latency of the user's dense model, the state's module and (unless
the state is already fused) a fused copy of it, at batch 1 and a larger batch (``graphprune.latency``).

Preconditions: ``traced``. Effects: ``artifacts["latency"]`` (JSON-able: per batch size, median/min/max
ms and speedup over dense per variant, thread count); nothing else changes. "pruned" is the state's
module as it stands when the pass runs (place it after ``remove-channels``).
"""

from __future__ import annotations

from dataclasses import dataclass

from graphprune.latency import latency_record
from graphprune.passes import Pass, Stage
from graphprune.state import CompileState
from passes.fuse import fuse


@dataclass(frozen=True)
class MeasureLatency(Pass):
    name = "measure-latency"
    requires = frozenset({"traced"})
    provides = frozenset({"latency"})
    stage = Stage.MEASURE
    batches: tuple[int, ...] = (1, 32)
    repeats: tuple[int, ...] = (30, 5)  # per batch size
    warmup: int = 2
    threads: int = 1
    fused: bool = True  # also time a fused copy of the state's module

    def run(self, state: CompileState) -> CompileState:
        current = "pruned+fused" if "fused" in state.facts else "pruned"
        variants = {"dense": state.model, current: state.gm}
        if self.fused and "fused" not in state.facts:
            variants["pruned+fused"] = fuse(state.gm, state.example_inputs)[0]
        record = latency_record(variants, state.example_inputs, batches=self.batches,
                                repeats=dict(zip(self.batches, self.repeats)), warmup=self.warmup,
                                num_threads=self.threads)
        return state.with_(artifacts={**state.artifacts, "latency": record})
