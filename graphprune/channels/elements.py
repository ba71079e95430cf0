"""The element table: every channel the analysis sees is an integer *element*.

Parameters dims and op outputs get fresh elements; rules *unify* elements that are the same channel
(a residual add, a conv's input dim and its producer, a layer-scale parameter and the stream it
scales). Unions are recorded as edge arrays and resolved once at the end with a vectorised
connected-components pass, so the analysis of a large model costs numpy time, not Python loops.
A layout (see ``Layout``) says which tensor dims carry which elements, index by index.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

Ids = np.ndarray  # int64 element ids, one per index along a dim


@dataclass(frozen=True)
class Member:
    """A parameter/buffer dim whose index i carries element ``ids[i]``."""

    fqn: str
    dim: int
    ids: Ids


@dataclass(frozen=True)
class Note:
    """A reason attached to a set of elements: why they are frozen, or why removing them is inexact."""

    reason: str
    node: str
    ids: Ids


@dataclass
class ElementTable:
    """Append-only record of elements, unions, parameter members, anchors and notes."""

    count: int = 0
    _edges_a: list[Ids] = field(default_factory=list)
    _edges_b: list[Ids] = field(default_factory=list)
    members: dict[tuple[str, int], Member] = field(default_factory=dict)
    frozen: list[Note] = field(default_factory=list)
    inexact: list[Note] = field(default_factory=list)
    _anchors: list[Ids] = field(default_factory=list)
    # Grouped convolutions: node names to prune by whole groups, and (output elements, groups) of those
    # pruned within groups (see rules/conv.py and analysis.analyze_until_stable).
    whole_group_convs: frozenset[str] = frozenset()
    within_group_convs: dict[str, tuple[Ids, int]] = field(default_factory=dict)
    # Reshapes spreading one channel dim over several (into heads): node name -> the input channels of
    # each such block; those named in ``head_splits`` are split by whole heads, and ``heads`` lists the
    # elements of each split's head dim (``graphprune.channels.heads``, ``ops/reshape.py``).
    spreads: dict[str, list[Ids]] = field(default_factory=dict)
    head_splits: frozenset[str] = frozenset()
    heads: list[Ids] = field(default_factory=list)
    # Alias name -> canonical name of one shared tensor (``interface.tensor_aliases``): every use of a
    # tied parameter is keyed by one name, so its uses couple and removal cuts it once.
    aliases: Mapping[str, str] = field(default_factory=dict)
    _resolved: tuple[tuple[int, int], np.ndarray] | None = field(default=None, repr=False)

    def new(self, n: int) -> Ids:
        ids = np.arange(self.count, self.count + n, dtype=np.int64)
        self.count += n
        return ids

    def param(self, fqn: str, dim: int, size: int) -> Ids:
        """Elements of a parameter dim; the same (fqn, dim) always gets the same elements, so a
        parameter used twice (weight sharing, under one name or several) couples both uses."""
        key = (self.aliases.get(fqn, fqn), dim)
        if key not in self.members:
            self.members[key] = Member(key[0], dim, self.new(size))
        return self.members[key].ids

    def bind(self, fqn: str, dim: int, ids: Ids) -> Ids:
        """Parameter dim ``(fqn, dim)`` carries exactly ``ids``: ``unify(param(...), ids)`` without
        minting elements for it. Most parameter dims are bound like this (norm affines, a conv's input
        columns, biases), which keeps the union-find a fraction of the size."""
        key = (self.aliases.get(fqn, fqn), dim)
        if key in self.members:
            self.unify(self.members[key].ids, ids)
        else:
            self.members[key] = Member(key[0], dim, np.asarray(ids, dtype=np.int64))
        return self.members[key].ids

    def unify(self, a: Ids, b: Ids) -> None:
        if a is b:
            return
        if len(a) != len(b):
            raise ValueError(f"cannot unify channel sets of sizes {len(a)} and {len(b)}")
        self._edges_a.append(np.asarray(a, dtype=np.int64))
        self._edges_b.append(np.asarray(b, dtype=np.int64))

    def tie(self, ids: Ids) -> None:
        """Make every element in ``ids`` one channel (they must be kept or removed together)."""
        if len(ids) > 1:
            self.unify(ids[:-1], ids[1:])

    def freeze(self, ids: Ids, reason: str, node: str) -> None:
        if len(ids):
            self.frozen.append(Note(reason, node, np.asarray(ids, dtype=np.int64)))

    def mark_inexact(self, ids: Ids, reason: str, node: str) -> None:
        if len(ids):
            self.inexact.append(Note(reason, node, np.asarray(ids, dtype=np.int64)))

    def anchor(self, ids: Ids) -> None:
        """Record that these elements are channels of an activation (not just a parameter dim)."""
        self._anchors.append(np.asarray(ids, dtype=np.int64))

    def resolve(self) -> np.ndarray:
        """Element -> channel label (connected components of the unions; cached until the next union
        or new element)."""
        key = (self.count, len(self._edges_a))
        if self._resolved is not None and self._resolved[0] == key:
            return self._resolved[1]
        if not self._edges_a:
            labels = np.arange(self.count, dtype=np.int64)
        else:
            labels = components(np.concatenate(self._edges_a), np.concatenate(self._edges_b), self.count)
        self._resolved = (key, labels)
        return labels

    def anchored(self) -> np.ndarray:
        mask = np.zeros(self.count, dtype=bool)
        for ids in self._anchors:
            mask[ids] = True
        return mask


def components(a: np.ndarray, b: np.ndarray, count: int) -> np.ndarray:
    """Connected-component label of each of ``count`` nodes under the edges ``a[i] -- b[i]``.

    Weak components of the directed graph are the undirected ones without building the symmetric
    matrix, and float64 CSR data is what scipy's validation would otherwise convert to (together 20-30 %
    less time on a million edges)."""
    graph = csr_matrix((np.ones(len(a)), (a, b)), shape=(count, count))
    _, labels = connected_components(graph, directed=True, connection="weak")
    return labels.astype(np.int64)
