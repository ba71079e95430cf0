"""layout: emit the module in the memory format it runs fastest in on this machine.

Preconditions: ``traced`` (dense, pruned or fused). ``memory_format``: ``"contiguous"`` leaves the
module as it is; ``"channels_last"`` converts its 4-D weights (``graphprune.memory_format``);
``"auto"`` (what a latency budget schedules) times both on the example inputs at ``batch`` and
``threads`` (interleaved blocks of warm calls, the median per-round ratio: ``graphprune.latency``)
and keeps channels-last only where it is at least ``MIN_GAIN`` faster, because the choice is made
for the deployed model and noise must not decide it. Either way the converted copy must compute
what the module computes (relative error under ``as_module.TOLERANCE`` on every output leaf) and
must run at all: an op that needs contiguous input (a ``view`` of a conv output, as in a channel
shuffle) makes the pass keep the original and say why. The input state's module and tensors are not
touched. Records ``artifacts["layout"]``: what was chosen, why, the time ratio and the output error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from graphprune.as_module import TOLERANCE, output_difference
from graphprune.latency import eval_mode, measured_fraction, timing_inputs
from graphprune.memory_format import channels_last, convertible_tensors
from graphprune.passes import Pass, Stage, configure
from graphprune.plan.budget import latency_rule, layout_of
from graphprune.plan.schema import LAYOUTS
from graphprune.state import CompileState

MIN_GAIN = 0.03  # "auto" converts only when channels-last takes at most 97 % of the time
MEASURE_SECONDS = 1.5


@dataclass(frozen=True)
class Layout(Pass):
    name = "layout"
    requires = frozenset({"traced"})
    provides = frozenset({"laid-out"})
    stage = Stage.FUSE + 5  # after BatchNorm folding (fewer tensors to convert), before emit and timing
    default_for = frozenset({"laid-out"})
    memory_format: str = "auto"
    batch: int | None = None  # the batch "auto" times at (None: the example inputs')
    threads: int = 1  # intra-op threads while timing

    @classmethod
    def from_plan(cls, plan: Any, options: Mapping[str, Any], where: str) -> Layout:
        """``[emit] layout``, timed at the latency budget's batch and threads where the plan has one."""
        base = cls()
        if plan is not None:
            rule = latency_rule(plan)
            settings = {} if rule is None else {"batch": rule.budget.batch, "threads": rule.budget.threads}
            base = cls(memory_format=layout_of(plan), **settings)
        return configure(base, options, where, plan)

    def run(self, state: CompileState) -> CompileState:
        if self.memory_format not in LAYOUTS:
            raise ValueError(f"layout: memory_format must be one of {', '.join(LAYOUTS)}, "
                             f"got {self.memory_format!r}")
        gm, record = choose_layout(state.gm, state.example_inputs, self.memory_format, self.batch, self.threads)
        return state.with_(gm=gm, artifacts={**state.artifacts, "layout": record})


def choose_layout(gm: Any, example_inputs: tuple[Any, ...], memory_format: str, batch: int | None = None,
                  threads: int = 1) -> tuple[Any, dict[str, Any]]:
    """The module to return and the record of why."""
    record: dict[str, Any] = {"asked": memory_format, "memory_format": "contiguous"}
    if memory_format == "contiguous":
        return gm, {**record, "why": "asked"}
    if not convertible_tensors(gm):
        return gm, {**record, "why": "no 4-D weights to convert"}
    candidate, problem, error = _checked_copy(gm, example_inputs)
    record["max_relative_error"] = error
    if problem:
        return gm, {**record, "why": problem}
    if memory_format == "channels_last":
        return candidate, {**record, "memory_format": "channels_last", "why": "asked"}
    inputs = timing_inputs(example_inputs, batch)
    ratio = measured_fraction(lambda: gm(*inputs), lambda: candidate(*inputs), [gm, candidate],
                              num_threads=threads, seconds=MEASURE_SECONDS)
    record.update(time_ratio=round(ratio, 4), batch=batch, threads=threads)
    if ratio <= 1 - MIN_GAIN:
        return candidate, {**record, "memory_format": "channels_last",
                           "why": f"measured faster: {ratio:.3f} of the contiguous module's time"}
    return gm, {**record, "why": f"not measured faster: channels-last takes {ratio:.3f} of the time"}


def _checked_copy(gm: Any, example_inputs: tuple[Any, ...]) -> tuple[Any, str, float]:
    """(channels-last copy, the reason it cannot be used or "", its relative output error)."""
    candidate = channels_last(gm, example_inputs)
    with eval_mode([gm, candidate]), torch.no_grad():
        want = gm(*example_inputs)
        try:
            got = candidate(*example_inputs)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the original, with the reason
            first = (str(exc).splitlines() or [""])[0][:160]
            return None, f"channels-last copy fails on the example inputs ({type(exc).__name__}: {first})", 0.0
    where, error = output_difference(got, want)
    if error > TOLERANCE:
        return None, f"channels-last copy differs at output {where or 'leaf'} (relative error {error:.2e})", error
    return candidate, "", error
