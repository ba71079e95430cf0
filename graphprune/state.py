"""The compile state that passes read and return. Immutable: a pass returns a new state with
``dataclasses.replace`` and never mutates its input, the GraphModule and its tensors included (a pass
that rewrites the graph or its parameters works on a copy, ``graphprune.copy_on_write``), so a failed
pass leaves the previous state intact and any earlier state stays valid
(``tests/passes/test_input_state_untouched.py`` runs every pass and checks)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch.fx as fx
from torch import nn

from graphprune.channels.analysis import ChannelAnalysis
from graphprune.channels.groups import ChannelGraph


@dataclass(frozen=True)
class Options:
    sparsity: float = 0.5
    score: str = "l2"
    round_to: int = 1
    min_channels: int = 1
    exact: bool = False  # True: never remove a channel whose removal changes a statistic (LayerNorm)
    # "exact": statistics over removed channels keep the original width where the removed channels are
    # proved zero (graphprune.statistics); "renormalize": over the kept channels, reported inexact
    statistics: str = "exact"
    # "keep": every output leaf's channels are frozen; "zero-fill" (or a dict of leaf name -> mode): an
    # output leaf's channels may be removed and are scattered back into zeros at the output (zero_fill.py)
    outputs: Any = "keep"


@dataclass(frozen=True)
class CompileState:
    model_name: str
    model: nn.Module  # the user's module: read, never written
    example_inputs: tuple[Any, ...]  # the graph's inputs, in forward's order (``interface.bind_inputs``)
    options: Options = Options()
    gm: fx.GraphModule | None = None
    values: dict[str, Any] | None = None
    analysis: ChannelAnalysis | None = None
    channels: ChannelGraph | None = None
    scores: dict[str, list[np.ndarray]] = field(default_factory=dict)  # criterion -> per-group scores
    keep: np.ndarray | None = None  # bool per channel label
    kept: dict[str, dict[int, list[int]]] = field(default_factory=dict)  # fqn -> dim -> kept indices
    macs: dict[str, int] = field(default_factory=dict)  # "dense" / "pruned", counted while propagating
    # per-weight (irregular / N:M / shape-wise) state: criterion -> parameter fqn -> score tensor
    weight_scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    masks: dict[str, Any] = field(default_factory=dict)  # parameter fqn -> bool tensor, same shape (True = kept)
    data: Any = None  # iterable of (input, target) batches for data-driven passes (scoring, ADMM)
    val_data: Any = None  # validation batches (accuracy before/after pruning and recovery), or None
    artifacts: dict[str, Any] = field(default_factory=dict)  # pass name -> JSON-able record for the report
    plan: Any = None  # the validated graphprune.plan.Plan this compile follows
    trail: tuple[dict[str, Any], ...] = ()  # per pass run: name, why, seconds (the scheduler's record)
    facts: frozenset[str] = frozenset()
    history: tuple[tuple[str, float], ...] = ()
    input_constants: dict[str, Any] | None = None  # forward arguments traced as constants (None: defaults)
    inexact_cuts: tuple[tuple[str, str, int], ...] = ()  # (reason, node, channels removed) over all rounds

    def with_(self, **changes: Any) -> CompileState:
        return replace(self, **changes)

    def selectable_modules(self) -> dict[str, nn.Module]:
        """The modules a plan selects by name and type, by path: the user's own where the path is theirs.
        Why not the graph's: a torch.export capture keeps the paths but its modules are plain
        ``nn.Module`` holders, so a ``type:`` selector, or telling a layer's input columns from its
        output rows (``input_weight_dim``), would find nothing; fx's leaves are the user's anyway."""
        graph = dict(self.gm.named_modules()) if self.gm is not None else {}
        user = dict(self.model.named_modules()) if isinstance(self.model, nn.Module) else {}
        return {**graph, **{path: m for path, m in user.items() if path in graph}}
