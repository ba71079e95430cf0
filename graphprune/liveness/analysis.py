"""The liveness walk: zero channels forward, read channels backward, dead labels where they meet.

Why it is exact: removing a set D of channel labels zeroes every parameter slice carrying them. By
induction over the graph, every value that is read keeps its value: a read channel in D was proved
zero, and zero stays zero once its producers' slices are zeroed (a conv row with its bias, a norm
with its affine and running mean); a read channel outside D only ever meets D through zero values.
Preconditions: ``groups`` (analysis and channel graph of the current GraphModule) and ``shapes``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.fx as fx

from graphprune.channels.layout import Layout, iter_layouts
from graphprune.liveness.layers import LinearView, NormView, linear_view, norm_view
from graphprune.liveness.ops import GENERIC, MOVEMENT, Kind, kind_of
from graphprune.liveness.zeroed import NOTHING, Zeroed
from graphprune.state import CompileState
from graphprune.values import TensorInfo


@dataclass
class Liveness:
    carried: dict[str, set[int]]  # node -> channel labels its value carries
    zero: dict[str, set[int]]  # node -> labels that are zero in it for every model input
    read: dict[str, set[int]] = field(default_factory=dict)  # node -> labels whose values matter
    modelled: set[str] = field(default_factory=set)  # parameter fqns whose effect the walk models


def _labels(lay: object, labels: np.ndarray, among: np.ndarray | None = None) -> set[int]:
    """The labels of a layout's elements; with ``among`` (bool per label) only those it flags."""
    found: set[int] = set()
    for one in iter_layouts(lay):
        for ids in one.all_ids():
            labs = labels[ids]
            found.update(np.unique(labs if among is None else labs[among[labs]]).tolist())
    return found


def _dim_labels(lay: object, dim: int, labels: np.ndarray, size: int) -> np.ndarray | None:
    ids = lay.get(dim) if isinstance(lay, Layout) else None
    return labels[ids] if ids is not None and len(ids) == size else None


def _all_true(labs: np.ndarray, flags: np.ndarray) -> set[int]:
    """Labels every one of whose indices is flagged."""
    return {int(x) for x in np.unique(labs)} - {int(x) for x in np.unique(labs[~flags])}


class _Walk:
    def __init__(self, state: CompileState, transitive: bool, only: set[int] | None = None,
                 zeroed: Zeroed = NOTHING) -> None:
        self.gm, self.values, self.layouts = state.gm, state.values, state.analysis.layouts
        self.labels, self.masks, self.transitive = state.channels.labels, state.masks, transitive
        self.movement = state.analysis.movement
        self.only = only  # follow these labels alone (a sound, cheaper walk: other labels are never zero)
        self.among = None if only is None else _flags(only, self.labels)
        self.zeroed = zeroed  # how the walk reads the graph's tensors (the masked model of a removal round)
        self.kinds: dict[str, Kind] = {}
        self.views: dict[str, LinearView | NormView] = {}
        self.live = Liveness({}, {})

    def run(self, read: bool = True) -> Liveness:
        nodes = list(self.gm.graph.nodes)
        for node in nodes:
            self.live.carried[node.name] = _labels(self.layouts.get(node.name), self.labels, self.among)
            self.live.zero[node.name] = self._zero(node)
        if not read:
            return self.live
        self.live.read = {node.name: set() for node in nodes}
        for node in reversed(nodes):
            self._read(node)
        return self.live

    # -- forward: zero channels --------------------------------------------------------------------
    def _zero(self, node: fx.Node) -> set[int]:
        if self.only is not None and not self.live.carried[node.name]:
            return set()
        if node.op == "get_attr":
            self.live.modelled.add(str(node.target))
            return self._zero_attr(node)
        if node.op in ("placeholder", "output"):
            return set()
        kind = MOVEMENT if node.name in self.movement else kind_of(node, self.gm)
        view = None
        if kind.zero in ("linear", "norm"):
            view = linear_view(node, self.gm, self.values, self.masks, self.zeroed) if kind.zero == "linear" \
                else norm_view(node, self.gm, self.values, self.zeroed)
            kind = kind if view is not None else GENERIC if kind.zero == "linear" or kind.read == "all" \
                else Kind("none", "per-channel")
        if kind.read == "per-channel" and not isinstance(self.values.get(node.name), TensorInfo):
            kind = Kind("none", kind.read)  # (values, indices) pairs: indices of zeros are not zero
        self.kinds[node.name] = kind
        if view is not None:
            self.views[node.name] = view
        if node.op == "call_module" and kind.read != "all":
            m = self.gm.get_submodule(str(node.target))
            names = [n for n, _ in m.named_parameters(recurse=False)] + [n for n, _ in m.named_buffers(recurse=False)]
            self.live.modelled.update(f"{node.target}.{n}" for n in names)
        out = self.live.carried[node.name]
        if kind.zero == "linear":
            return self._zero_linear(node, view)
        if kind.zero == "norm":
            return self._zero_norm(node, view)
        operands = self._operands(node)
        zero = self.live.zero
        if kind.zero == "copy":
            # c is zero where some operand carries it and every operand carrying it is zero there
            carriers, carried = [a.name for a in operands if isinstance(a, fx.Node)], self.live.carried
            live = set().union(*(carried[a] - zero[a] for a in carriers))
            return (out & set().union(*(carried[a] for a in carriers))) - live
        if kind.zero == "add":
            if any(not isinstance(a, fx.Node) and a != 0 for a in operands):
                return set()
            return set.intersection(out, *(zero[a.name] for a in operands if isinstance(a, fx.Node)))
        if kind.zero == "mul":
            if any(not isinstance(a, fx.Node) and a == 0 for a in operands):
                return set(out)
            return out & set().union(*(zero[a.name] for a in operands if isinstance(a, fx.Node)))
        if kind.zero == "attention":
            v = _arg(node, 2, "value")
            return out & zero[v.name] if isinstance(v, fx.Node) else set()
        if kind.zero == "div" and operands and isinstance(operands[0], fx.Node) and all(
                not isinstance(a, fx.Node) and a != 0 for a in operands[1:]):
            return out & zero[operands[0].name]
        return set()

    def _operands(self, node: fx.Node) -> list:
        """Float tensor operands (nodes) and number literals; bool tensors (masks, where-conditions)
        carry no channel values. Integer tensors and numbers computed in the graph are unknown: None."""
        found: list = []
        for a in (*node.args, *node.kwargs.values()):
            for x in (a if isinstance(a, (tuple, list)) else [a]):
                if isinstance(x, fx.Node):
                    v = self.values.get(x.name)
                    if isinstance(v, TensorInfo):
                        if v.dtype.is_floating_point:
                            found.append(x)
                        elif v.dtype != torch.bool:  # integer tensors carry values we do not track
                            found.append(None)
                    elif isinstance(v, (tuple, list)):
                        found.append(x)
                    else:
                        found.append(None)
                elif isinstance(x, (int, float)) and not isinstance(x, bool):
                    found.append(x)
        return found

    def _zero_attr(self, node: fx.Node) -> set[int]:
        lay = self.layouts.get(node.name)
        if not isinstance(lay, Layout) or not lay.dims:
            return set()
        t = self.gm
        for part in str(node.target).split("."):
            t = getattr(t, part)
        dims = {d: ids for d, ids in lay.dims.items() if self.among is None or self.among[self.labels[ids]].any()}
        if not dims:  # none of the followed labels: the walk reports none of them zero
            return set()
        mask = self.masks.get(str(node.target))
        masked = isinstance(mask, torch.Tensor) and mask.shape == t.shape
        nz = (self.zeroed.value(t) * mask != 0).numpy() if masked else self.zeroed.nonzero(t)
        nonzero: set[int] = set()
        for d, ids in dims.items():
            live = np.moveaxis(nz, d, 0).reshape(t.shape[d], -1).any(1)
            nonzero |= {int(x) for x in np.unique(self.labels[ids][live])}
        return self.live.carried[node.name] - nonzero

    def _zero_linear(self, node: fx.Node, v: LinearView) -> set[int]:
        n_out, n_in = v.shape
        out_labels = _dim_labels(self.layouts.get(node.name), v.out_dim, self.labels, n_out)
        if out_labels is None:
            return set()
        in_zero = self._in_zero(v.x, v.in_dim, n_in) if self.transitive else np.zeros(n_in, bool)
        reads_live = v.rows_reading(~in_zero)
        return _all_true(out_labels, ~v.bias & ~reads_live)

    def _zero_norm(self, node: fx.Node, v: NormView) -> set[int]:
        labs = _dim_labels(self.layouts.get(node.name), v.dim, self.labels, len(v.always_zero))
        if labs is None:
            return set()
        in_zero = self._in_zero(v.x, v.dim, len(labs))
        return _all_true(labs, v.always_zero | (in_zero & v.keeps_zero))

    def _in_zero(self, x: fx.Node, dim: int, size: int) -> np.ndarray:
        labs = _dim_labels(self.layouts.get(x.name), dim, self.labels, size)
        zero = self.live.zero.get(x.name, set())
        return np.isin(labs, list(zero)) if labs is not None and zero else np.zeros(size, dtype=bool)

    # -- backward: read channels -------------------------------------------------------------------
    def _read(self, node: fx.Node) -> None:
        carried, read = self.live.carried, self.live.read
        if node.op == "output":
            for a in node.all_input_nodes:
                read[a.name] |= carried[a.name]
            return
        if node.op in ("placeholder", "get_attr") or not node.users:
            return
        kind = self.kinds[node.name]
        if kind.read == "all":
            for a in node.all_input_nodes:
                read[a.name] |= carried[a.name]
        elif kind.read in ("copy", "per-channel"):
            self._read_per_channel(node, kind)
        elif kind.read == "linear":
            self._read_linear(node, self.views[node.name])
        elif kind.read == "norm":
            self._read_norm(node, self.views[node.name])
        elif kind.read == "attention":
            self._read_attention(node)

    def _read_per_channel(self, node: fx.Node, kind: Kind) -> None:
        carried, read, zero = self.live.carried, self.live.read, self.live.zero
        wanted = read[node.name] & carried[node.name]
        operands = [a for a in self._operands(node) if isinstance(a, fx.Node)]
        if kind.zero == "mul" and any(not isinstance(a, fx.Node) and a == 0 for a in self._operands(node)):
            wanted = set()
        first_zero: dict[int, str] = {}
        if kind.zero == "mul":  # one zero factor decides (also in a contraction); only it must stay zero
            for a in operands:
                for c in zero[a.name]:
                    first_zero.setdefault(c, a.name)
        for a in node.all_input_nodes:
            take = carried[a.name] & wanted
            if kind.read == "per-channel" and a in operands:
                take |= carried[a.name] - carried[node.name]
            read[a.name] |= {c for c in take if first_zero.get(c, a.name) == a.name}

    def _read_attention(self, node: fx.Node) -> None:
        """Output channels come from v (per channel); q and k are read on every channel they carry,
        except a contracted channel that is zero in the other one of the two."""
        carried, read, zero = self.live.carried, self.live.read, self.live.zero
        q, k, v = (_arg(node, i, n) for i, n in enumerate(("query", "key", "value")))
        wanted = read[node.name] & carried[node.name]
        for a in node.all_input_nodes:
            if a is v:
                read[a.name] |= (carried[a.name] & wanted) | (carried[a.name] - carried[node.name])
            elif a in (q, k) and q is not k:
                skip = zero[k.name] if a is q else zero[q.name] - zero[k.name]  # the zero one reads
                read[a.name] |= carried[a.name] - (skip - carried[node.name])
            else:
                read[a.name] |= carried[a.name]

    def _read_linear(self, node: fx.Node, v: LinearView) -> None:
        read = self.live.read
        n_out, n_in = v.shape
        out_labels = _dim_labels(self.layouts.get(node.name), v.out_dim, self.labels, n_out)
        in_labels = _dim_labels(self.layouts.get(v.x.name), v.in_dim, self.labels, n_in)
        other = self.live.carried[v.x.name] - (set(in_labels.tolist()) if in_labels is not None else set())
        read[v.x.name] |= other
        if in_labels is None:
            return
        out_read = np.ones(n_out, dtype=bool)
        if self.transitive and out_labels is not None:
            out_read = np.isin(out_labels, list(read[node.name]))
        in_read = v.columns_read(out_read)
        read[v.x.name] |= {int(c) for c in np.unique(in_labels[in_read])}

    def _read_norm(self, node: fx.Node, v: NormView) -> None:
        read = self.live.read
        labs = _dim_labels(self.layouts.get(node.name), v.dim, self.labels, len(v.always_zero))
        if labs is None:
            read[v.x.name] |= self.live.carried[v.x.name]
            return
        in_read = np.isin(labs, list(read[node.name])) & ~v.always_zero
        read[v.x.name] |= {int(c) for c in np.unique(labs[in_read])}
        read[v.x.name] |= self.live.carried[v.x.name] - set(labs.tolist())


def liveness(state: CompileState, transitive: bool = True) -> Liveness:
    """Zero and read channel labels of every node. ``transitive=False`` keeps to one hop (a conv reads
    a column whenever it is non-zero; its rows ignore zero inputs), as unused-path removal is usually
    stated; repeated rounds then reach the same fixed point."""
    return _Walk(state, transitive).run()


def zero_labels(state: CompileState, only: set[int] | None = None, zeroed: Zeroed = NOTHING) -> dict[str, set[int]]:
    """Node -> channel labels zero in its value for every model input (the forward half of the walk),
    among ``only`` where given (a label outside it is never reported zero), with the graph's tensors
    read through ``zeroed`` (e.g. a removal round's cut slices zero)."""
    return _Walk(state, True, only, zeroed).run(read=False).zero


def _flags(chosen: set[int], labels: np.ndarray) -> np.ndarray:
    flags = np.zeros(max(int(labels.max()) + 1 if len(labels) else 0, max(chosen, default=-1) + 1), dtype=bool)
    flags[list(chosen)] = True
    return flags


def dead_labels(state: CompileState, transitive: bool = True) -> np.ndarray:
    """Bool per channel label: removable without changing the model's function. Frozen and inexact
    channels, and channels of parameters whose effect the walk does not model, are never dead."""
    live = liveness(state, transitive)
    labels = state.channels.labels
    dead = np.zeros(int(labels.max()) + 1 if len(labels) else 0, dtype=bool)
    for group in state.channels.groups:
        ok = group.prunable & ~group.inexact
        for m in group.members:
            if m.fqn not in live.modelled:
                ok[np.unique(m.channel)] = False
        dead[group.labels] = ok
    blocked = set().union(*((live.read[n] & c) - live.zero[n] for n, c in live.carried.items()))
    dead[list(blocked)] = False
    return dead


def _arg(node: fx.Node, index: int, name: str) -> object:
    return node.args[index] if index < len(node.args) else node.kwargs.get(name)
