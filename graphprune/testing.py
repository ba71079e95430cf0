"""Helpers for checking pruning results, shared by the tests and usable by users: the masked dense
model that a pruned model must reproduce exactly."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from graphprune.interface import leaves


def masked_model(model: nn.Module, kept: dict[str, dict[Any, list[int]]]) -> nn.Module:
    """A deep copy of ``model`` in eval mode with every index *not* kept zeroed, per tensor and dim."""
    masked = copy.deepcopy(model).eval()
    tensors = dict(masked.named_parameters())
    tensors.update(dict(masked.named_buffers()))
    with torch.no_grad():
        for fqn, dims in kept.items():
            t = tensors.get(fqn)
            if t is None:
                path, _, attr = fqn.rpartition(".")
                t = getattr(masked.get_submodule(path) if path else masked, attr, None)
            if t is None:
                continue  # a tensor graphprune added (a mask buffer): the dense model has nothing to zero
            for dim, indices in dims.items():
                dim = int(dim)
                drop = torch.ones(t.shape[dim], dtype=torch.bool)
                drop[torch.as_tensor(indices, dtype=torch.long)] = False
                index = [slice(None)] * t.ndim
                index[dim] = drop
                t[tuple(index)] = 0
    return masked


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = max(float(b.abs().max()), 1e-12)
    return float((a - b).abs().max()) / scale


def masked_equivalence_error(model: nn.Module, pruned: nn.Module, kept: dict, inputs: tuple,
                             kwargs: dict[str, Any] | None = None, pruned_inputs: tuple | None = None) -> float:
    """Max abs difference between the pruned and the masked dense outputs, relative to each output
    leaf's max abs, over every tensor leaf of the output structure; pruning is exact when this is at
    float rounding level. ``kwargs`` go to the dense model only; the pruned module takes
    ``pruned_inputs`` (default: ``inputs``), the tensor inputs ``compile`` traced.
    Raises ``AssertionError`` when the output structures or leaf shapes differ."""
    masked = masked_model(model, kept)
    with torch.no_grad():
        want = masked(*inputs, **(kwargs or {}))
        got = pruned.eval()(*(inputs if pruned_inputs is None else pruned_inputs))
    return structure_error(got, want)


def structure_error(got: Any, want: Any) -> float:
    """Largest ``relative_error`` over the tensor leaves of two outputs, which must have the same
    structure (container types, keys, leaf shapes and non-tensor leaves)."""
    got_leaves, want_leaves = list(leaves(got)), list(leaves(want))
    assert [p for p, _ in got_leaves] == [p for p, _ in want_leaves], \
        f"output structure changed: {[p for p, _ in got_leaves]} != {[p for p, _ in want_leaves]}"
    worst = 0.0
    for (path, g), (_, w) in zip(got_leaves, want_leaves):
        if isinstance(w, torch.Tensor):
            assert isinstance(g, torch.Tensor) and g.shape == w.shape, \
                f"output {path or 'leaf'} changed shape: {getattr(g, 'shape', g)} != {w.shape}"
            worst = max(worst, relative_error(g, w) if w.numel() else 0.0)
        else:
            assert g == w, f"output {path or 'leaf'} changed: {g!r} != {w!r}"
    return worst
