"""Helpers for checking pruning results, shared by the tests and usable by users: the masked dense
model that a pruned model must reproduce exactly."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


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


def masked_equivalence_error(model: nn.Module, pruned: nn.Module, kept: dict, inputs: tuple) -> float:
    """Max abs difference between the pruned and the masked dense outputs, relative to the output's
    max abs; pruning is exact when this is at float rounding level."""
    masked = masked_model(model, kept)
    with torch.no_grad():
        want = masked(*inputs)
        got = pruned.eval()(*inputs)
    return relative_error(got, want)
