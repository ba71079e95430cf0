"""Liveness of channels: which channels are provably dead (all zero where anything reads them).

``dead_labels(state)`` is the analysis behind the ``remove-unused-paths`` pass: a forward walk finds
channels that are zero for every input (zero filters, norms mapping zero to zero, products with a
zero factor), a backward walk finds channels nobody reads (zero consumer columns, unread outputs),
and a channel label is dead when every tensor carrying it is zero or unread there. Per-op behaviour
lives in ``ops`` (a table) and ``layers`` (conv/linear connectivity, norm constants)."""

from graphprune.liveness.analysis import Liveness, dead_labels, liveness

__all__ = ["Liveness", "dead_labels", "liveness"]
