"""A latency cost model: how long the pruned model would run, as a function of the kept channels.

Why not MACs: on a CPU a pruned model's time does not follow its MACs (docs/latency.md: depthwise
convs, activations and residual adds are memory bound, per-op dispatch does not shrink with width),
so a MAC budget of 0.5 is not half the time. Why per op: the dense graph is run once per round
through an ``fx.Interpreter`` that times every node, on this machine, at the budget's batch size and
thread count (``graphprune.latency``'s method: inference mode, warm-up, medians over rounds). A node's
time is then taken to scale with the work removal leaves it: a conv/linear with the kept fraction of
each weight dim (as its MACs do), any other op with the kept fraction of its output's channel sets
(an elementwise op over half the channels streams half the memory), and a node with no channel set
(a reshape of a frozen tensor, a placeholder) not at all. This is a *proportional* model; what it
misses (interpreter and dispatch overhead, BatchNorms that ``fuse`` later folds away, kernels that run
slower at odd widths) is fitted afterwards from measured compiles (``graphprune.latency_budget``).
The model has the cost model's form (``graphprune.costs.CostModel``), so the budget search is the one
MAC and parameter budgets use.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.fx as fx

from graphprune.costs import CostModel, TermBuilder, element_ids, layer_weight
from graphprune.latency import eval_mode, threads, timing_inputs
from graphprune.state import CompileState
from graphprune.values import TensorInfo

PROFILE_ROUNDS = 7
PROFILE_WARMUP = 2


class _TimedInterpreter(fx.Interpreter):
    """Runs the graph node by node, appending each node's wall time (ms) to ``times[node.name]``."""

    def __init__(self, gm: fx.GraphModule, times: dict[str, list[float]]):
        super().__init__(gm, garbage_collect_values=True)
        self.times = times

    def run_node(self, n: fx.Node) -> Any:
        start = time.perf_counter()
        out = super().run_node(n)
        self.times.setdefault(n.name, []).append((time.perf_counter() - start) * 1e3)
        return out


def profile(gm: fx.GraphModule, inputs: Sequence[Any], *, batch: int | None = None, num_threads: int = 1,
            rounds: int = PROFILE_ROUNDS, warmup: int = PROFILE_WARMUP) -> dict[str, float]:
    """Median milliseconds per node of ``gm`` on ``inputs`` (repeated to ``batch`` along dim 0 when
    given), in eval mode, under ``torch.inference_mode``; the graph module's flags are restored."""
    args = timing_inputs(inputs, batch)
    times: dict[str, list[float]] = {}
    with threads(num_threads), eval_mode([gm]), torch.inference_mode():
        for _ in range(warmup):
            _TimedInterpreter(gm, {}).run(*args)
        for _ in range(rounds):
            _TimedInterpreter(gm, times).run(*args)
    return {name: round(statistics.median(t), 5) for name, t in times.items()}


def latency_model(state: CompileState, node_ms: dict[str, float]) -> CostModel:
    """The proportional model over ``node_ms`` (a ``profile`` of ``state.gm``): dense = the profile's
    total, each node's time times the kept fraction of its element sets."""
    layouts, values = state.analysis.layouts, state.values
    b = TermBuilder()
    constant = 0.0
    for node in state.gm.graph.nodes:
        ms = node_ms.get(node.name, 0.0)
        out = values.get(node.name)
        weight = layer_weight(node, state) if isinstance(out, TensorInfo) else None
        sets = weight[1] if weight is not None else (
            element_ids(layouts.get(node.name), range(out.ndim)) if isinstance(out, TensorInfo) else [])
        if any(s is not None and len(s) for s in sets):
            b.add(ms, list(sets))
        else:
            constant += ms
    return dataclasses.replace(b.build(None), constant=constant)
