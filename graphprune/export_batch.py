"""The batch dimension of an exported file: which inputs carry it, the examples to trace and check it
with, and whether an exported program really kept it symbolic.

Why a module of its own: ``.pt2`` and ``.onnx`` share one decision (dynamic or static, and why), so a
toolchain gets the same answer from both files. Dim 0 of every tensor input whose dim 0 equals the
first tensor input's is the batch (one ``torch.export.Dim`` named ``batch``, ``min=1``). torch.export
specialises a dimension of size 1, so a batch-1 example is traced repeated to batch 2; the file is
then checked at the example's batch and at one more (``probe``), never claimed dynamic unchecked.

Sequence: dim 1 of an integer input with at least two dims (token ids, an attention mask) is the
sequence length, and is asked dynamic too (``Dim.AUTO``, so a position table's bound becomes the range
instead of an error); the probe is one token longer. A module that cannot take another length is
exported with a dynamic batch and the example's length, and a note says why (``without_sequence``).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._pytree import tree_leaves, tree_map

from graphprune.capture_sizes import integer_like

BATCH = "batch"  # the name of the dynamic dimension in both formats
SEQUENCE = "sequence"  # the name of a token input's dim 1 in ONNX
_NOISY_LOGGERS = ("torch._subclasses.fake_tensor", "torch._guards")  # log a traceback per failed attempt


@dataclass(frozen=True)
class BatchPlan:
    """How to export ``inputs``: ``shapes`` (a torch.export ``dynamic_shapes``) is None for a static
    export, with ``static_reason`` saying why."""

    size: int | None  # the example's batch; None without a tensor input that has a dim 0
    shapes: Any = None
    trace_inputs: tuple[Any, ...] = ()
    probe_inputs: tuple[Any, ...] = ()
    static_reason: str = ""
    sequence: bool = False  # token inputs' dim 1 is asked dynamic too

    @property
    def dynamic(self) -> bool:
        return self.shapes is not None

    @property
    def probe_size(self) -> int:
        return leading_size(self.probe_inputs) or 0


def leading_size(inputs: Any) -> int | None:
    """Dim 0 of the first tensor leaf that has one (the batch), or None."""
    return next((t.shape[0] for t in tree_leaves(inputs) if isinstance(t, torch.Tensor) and t.dim()), None)


def _batched(leaf: Any, size: int) -> bool:
    return isinstance(leaf, torch.Tensor) and leaf.dim() >= 1 and leaf.shape[0] == size


def with_batch(inputs: tuple[Any, ...], size: int, n: int) -> tuple[Any, ...]:
    """``inputs`` with every batched leaf's rows cycled to ``n`` rows (other leaves unchanged)."""
    rows = torch.arange(n) % size
    return tree_map(lambda t: t.index_select(0, rows.to(t.device)) if _batched(t, size) else t, inputs)


def _tokens(leaf: Any) -> bool:
    """An integer or bool input whose dim 1 is a sequence length (token ids, an attention mask)."""
    return integer_like(leaf) and leaf.dim() >= 2 and leaf.shape[1] > 1


def with_length(inputs: tuple[Any, ...], n: int) -> tuple[Any, ...]:
    """``inputs`` with every token input's columns cycled to length ``n``."""
    def longer(t: Any) -> Any:
        return t.index_select(1, (torch.arange(n) % t.shape[1]).to(t.device)) if _tokens(t) else t
    return tree_map(longer, inputs)


def plan_batch(inputs: tuple[Any, ...], dynamic: bool, sequence: bool = True) -> BatchPlan:
    """The batch plan for ``inputs``; ``dynamic`` False (``[emit] dynamic_batch = false``) opts out;
    ``sequence``: token inputs get a dynamic length too, where they have one."""
    size = leading_size(inputs)
    if size is None:
        return BatchPlan(None, static_reason="no tensor input has a batch dimension")
    if not dynamic:
        return BatchPlan(size, static_reason="[emit] dynamic_batch = false")
    if size == 0:
        return BatchPlan(size, static_reason="an example batch of 0 cannot be traced with a dynamic batch")
    dim = torch.export.Dim(BATCH, min=1)
    sequence = sequence and any(_tokens(t) for t in tree_leaves(inputs))

    def dims(t: Any) -> Any:
        spec = {0: dim} if _batched(t, size) else {}
        if sequence and _tokens(t):
            spec[1] = torch.export.Dim.AUTO
        return spec or None

    shapes = tree_map(dims, inputs)
    trace = inputs if size > 1 else with_batch(inputs, size, 2)
    probe = with_batch(inputs, size, max(size, 2) + 1)
    if sequence:
        probe = with_length(probe, max(t.shape[1] for t in tree_leaves(inputs) if _tokens(t)) + 1)
    return BatchPlan(size, shapes, trace, probe, sequence=sequence)


def without_sequence(plan: BatchPlan, inputs: tuple[Any, ...]) -> BatchPlan:
    """The same plan with the sequence length static (the fallback when it cannot be dynamic)."""
    return plan_batch(inputs, True, sequence=False)


def batched_leaves(plan: BatchPlan) -> list[bool]:
    """Per tensor input (flattening order): does its dim 0 carry the batch?"""
    size = leading_size(plan.trace_inputs)
    return [_batched(t, size) for t in tree_leaves(plan.trace_inputs) if isinstance(t, torch.Tensor)]


def axis_names(plan: BatchPlan) -> tuple[Any, ...]:
    """The ONNX exporter's ``dynamic_shapes`` for a converted program: it renames the batch symbol to
    ``batch`` everywhere, so only the first batched input names it (one name per symbol); likewise the
    first token input names its length ``sequence``."""
    leaves = [t for t in tree_leaves(plan.trace_inputs) if isinstance(t, torch.Tensor)]
    flags = batched_leaves(plan)
    first = flags.index(True)
    tokens = next((i for i, t in enumerate(leaves) if _tokens(t)), None) if plan.sequence else None
    names = [{0: BATCH} if i == first else {} for i in range(len(flags))]
    if tokens is not None:
        names[tokens][1] = SEQUENCE
    return tuple(n or None for n in names)


def symbolic_batch(program: torch.export.ExportedProgram, plan: BatchPlan) -> bool:
    """Whether every batched user input of ``program`` has a symbolic dim 0 (not specialised), and, where
    the plan asks for it, every token input a symbolic length."""
    names = set(program.graph_signature.user_inputs)
    vals = [n.meta["val"] for n in program.graph.nodes if n.op == "placeholder" and n.name in names]
    flags = batched_leaves(plan)
    leaves = [t for t in tree_leaves(plan.trace_inputs) if isinstance(t, torch.Tensor)]
    if len(vals) != len(flags):
        return False
    batch = all(isinstance(v.shape[0], torch.SymInt) for v, f in zip(vals, flags) if f)
    length = not plan.sequence or all(isinstance(v.shape[1], torch.SymInt) for v, t in zip(vals, leaves)
                                      if _tokens(t))
    return batch and length


@contextlib.contextmanager
def quiet_failures(stderr: bool = False) -> Iterator[None]:
    """Silence torch's per-attempt error tracebacks (its loggers; with ``stderr``, what a failing fx
    GraphModule prints there): a failed dynamic attempt falls back, and the record says why in one line."""
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stderr(io.StringIO()) if stderr else contextlib.nullcontext():
            yield
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)
