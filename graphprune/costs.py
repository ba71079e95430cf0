"""Cost models: the MACs or parameters a pruned model would have, as a function of the kept channels,
without rebuilding it (budget search evaluates thousands of candidate keep-sets).

Every cost is a sum of terms ``dense * prod(kept fraction of an element set)``: a conv/linear layer's
MACs are (output positions) x (weight numel), and a weight's numel scales with the kept fraction of
each of its dims, exactly; other ops' MACs (a matmul's scale with its output and contracted dims) are
the terms their family declares (``OpSpec.cost``). What no channel decision can change (and what the
model does not cover) is a constant, calibrated so the dense total equals the count measured while
tracing."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch.fx as fx

from graphprune.channels.layout import Layout
from graphprune.ops.registry import Trait, has_trait, inherited, node_key
from graphprune.state import CompileState
from graphprune.values import TensorInfo


@dataclass
class CostModel:
    dense_terms: np.ndarray  # float64 per term
    factors: np.ndarray  # int per (term, k): index into the element sets, or -1 (factor 1)
    element_sets: list[np.ndarray]
    constant: float

    @property
    def dense(self) -> float:
        return float(self.dense_terms.sum() + self.constant)

    def count(self, keep_element: np.ndarray) -> float:
        fractions = np.ones(len(self.element_sets) + 1)
        for i, ids in enumerate(self.element_sets):
            fractions[i] = keep_element[ids].mean()
        return float(self.constant + (self.dense_terms * fractions[self.factors].prod(axis=1)).sum())


class TermBuilder:
    def __init__(self) -> None:
        self.terms: list[tuple[float, list[np.ndarray]]] = []

    def add(self, dense: float, sets: list[np.ndarray | None]) -> None:
        if dense > 0:
            self.terms.append((float(dense), [np.asarray(s) for s in sets if s is not None and len(s)]))

    def build(self, calibrated_total: float | None) -> CostModel:
        width = max((len(s) for _, s in self.terms), default=0) or 1
        sets: list[np.ndarray] = []
        factors = np.full((len(self.terms), width), -1, dtype=np.int64)
        for t, (_, term_sets) in enumerate(self.terms):
            for k, ids in enumerate(term_sets):
                factors[t, k] = len(sets)
                sets.append(ids)
        dense = np.array([d for d, _ in self.terms], dtype=np.float64)
        constant = max(0.0, (calibrated_total or 0.0) - float(dense.sum()))
        return CostModel(dense, factors, sets, constant)


def param_model(state: CompileState) -> CostModel:
    """Exact: a tensor's kept numel is its numel times the kept fraction of every member dim."""
    members = state.analysis.table.members
    b = TermBuilder()
    for fqn, p in state.gm.named_parameters():
        b.add(p.numel(), [members[(fqn, d)].ids if (fqn, d) in members else None for d in range(p.ndim)])
    return b.build(None)


def layer_weight(node: fx.Node, state: CompileState) -> tuple[tuple[int, ...], list, bool] | None:
    """The weight a conv/linear node multiplies with: (shape, element ids per dim, transposed). For
    functional calls the weight node's layout is used, so a slice of a packed parameter (the q/k/v
    thirds of an attention in_proj_weight) counts with the slice's own channels."""
    if node.op == "call_module":
        module = state.gm.get_submodule(str(node.target))
        if has_trait(module, Trait.WEIGHT_LAYER):
            members = state.analysis.table.members
            fqn, w = f"{node.target}.weight", module.weight
            ids = [members[(fqn, d)].ids if (fqn, d) in members else None for d in range(w.ndim)]
            return tuple(w.shape), ids, has_trait(module, Trait.TRANSPOSED)
    if node.op == "call_function" and has_trait(node.target, Trait.WEIGHT_LAYER) and len(node.args) > 1:
        w = node.args[1]
        info = state.values.get(w.name) if isinstance(w, fx.Node) else None
        if isinstance(info, TensorInfo):
            ids = element_ids(state.analysis.layouts.get(w.name), range(info.ndim))
            return info.shape, ids, has_trait(node.target, Trait.TRANSPOSED)
    return None


def _numel(info: TensorInfo) -> int:
    return math.prod(info.shape)


def element_ids(layout: object, dims: object) -> list[np.ndarray | None]:
    return [layout.get(d) for d in dims] if isinstance(layout, Layout) else []


def mac_model(state: CompileState) -> CostModel:
    layouts, values = state.analysis.layouts, state.values
    b = TermBuilder()
    for node in state.gm.graph.nodes:
        out = values.get(node.name)
        if not isinstance(out, TensorInfo):
            continue
        weight = layer_weight(node, state)
        if weight is not None:  # MACs = positions x weight numel / weight.shape[0]
            shape, ids, transposed = weight
            x = values.get(node.args[0].name) if isinstance(node.args[0], fx.Node) else None
            positions = _numel(x) if transposed and isinstance(x, TensorInfo) else _numel(out)
            b.add(positions / max(shape[0], 1) * math.prod(shape), ids)
            continue
        cost = inherited(node_key(node, state.gm), "cost") if node.op in ("call_function", "call_method") else None
        if cost is not None:
            for dense, sets in cost(out, _operand_reader(node, values, layouts), layouts.get(node.name)):
                b.add(dense, sets)
    return b.build(float(state.macs.get("dense") or 0))


def _operand_reader(node: fx.Node, values: dict, layouts: dict) -> Callable[[int, str], tuple]:
    """``operand(index, name) -> (TensorInfo | None, layout | None)``: argument ``index`` of ``node``, or
    its keyword ``name``, so a declared cost reads a call however it names its arguments."""
    def operand(index: int, name: str) -> tuple:
        arg = node.args[index] if index < len(node.args) else node.kwargs.get(name)
        return (values.get(arg.name), layouts.get(arg.name)) if isinstance(arg, fx.Node) else (None, None)
    return operand


def cost_model(state: CompileState, metric: str) -> CostModel:
    return mac_model(state) if metric == "macs" else param_model(state)
