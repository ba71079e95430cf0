"""The tensors of a GraphModule as the masked dense model holds them: the slices a removal round cuts
read as zero, without copying the model.

The statistics proof (``graphprune.statistics``) runs the liveness zero walk on the model whose removed
parameter slices are zeroed. Cloning and zeroing every cut tensor first cost more than the walk (ViT-B/16:
all 86 M weights copied for a walk that reads a few of them). ``Zeroed`` zeroes a tensor when the walk
reads its values (once, cached), and answers ``tensor != 0`` as the original's mask with the cut entries
cleared: the same bool array as on the zeroed copy, at a quarter of the bytes and no float copy. The masks
are numpy arrays: numpy runs these one-pass reductions on one core, torch's two threads waited on each
other whenever another process held a core (measured: 4-14 ms per call on a busy 2-core machine).

A tied tensor is zeroed along the cuts of every name it has, as the masked model zeroes its one tensor."""

from __future__ import annotations

import numpy as np
import torch
import torch.fx as fx

Cuts = dict[str, dict[int, np.ndarray]]  # fqn -> dim -> kept indices (every other index is zero)


class Zeroed:
    """Reads of ``gm``'s parameters and buffers with ``cuts`` zeroed (none: the tensors as they are)."""

    def __init__(self, gm: fx.GraphModule | None = None, cuts: Cuts | None = None) -> None:
        self._drop: dict[int, list[tuple[int, np.ndarray]]] = {}  # tensor id -> (dim, indices to zero)
        self._values: dict[int, torch.Tensor] = {}
        self._held: list[torch.Tensor] = []  # the tensors whose ids key the tables stay alive
        if gm is None or not cuts:
            return
        named = {**dict(gm.named_parameters(remove_duplicate=False)),
                 **dict(gm.named_buffers(remove_duplicate=False))}
        for fqn, dims in cuts.items():
            t = named.get(fqn)
            if t is None:
                continue
            self._held.append(t)
            for dim, kept in dims.items():
                self._drop.setdefault(id(t), []).append((dim, _dropped(t.shape[dim], kept)))

    def value(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` detached, its cut slices zero (a copy only for a cut tensor)."""
        drop = self._drop.get(id(t))
        if not drop:
            return t.detach()
        if id(t) not in self._values:
            z = t.detach().clone()
            with torch.no_grad():
                for dim, index in drop:
                    z.index_fill_(dim, torch.from_numpy(index), 0)
            self._values[id(t)] = z
        return self._values[id(t)]

    def nonzero(self, t: torch.Tensor) -> np.ndarray:
        """``value(t) != 0`` as a numpy bool array, computed on ``t`` without copying it."""
        nz = nonzero(t)
        for dim, index in self._drop.get(id(t), ()):
            keep = np.ones(nz.shape[dim], dtype=bool)
            keep[index] = False
            np.logical_and(nz, keep.reshape((-1,) + (1,) * (nz.ndim - dim - 1)), out=nz)
        return nz


NOTHING = Zeroed()  # no cuts: every read is the tensor itself


def nonzero(t: torch.Tensor) -> np.ndarray:
    """``t != 0`` as a fresh numpy bool array (through torch for dtypes numpy lacks, e.g. bfloat16)."""
    t = t.detach()
    try:
        return t.numpy() != 0
    except (TypeError, RuntimeError):
        return (t != 0).numpy()


def _dropped(size: int, kept: np.ndarray) -> np.ndarray:
    drop = np.ones(size, dtype=bool)
    drop[np.asarray(kept, dtype=np.int64)] = False
    return np.flatnonzero(drop)
