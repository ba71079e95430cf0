"""What the criteria score: the weights of convolutions and linear layers, nothing else.

Why one place: every criterion, the aggregation to channels and the mask pass must agree on which
tensors are prunable and which weight dim is a layer's output (a channel's filter). Biases, norm
affines, embeddings and transposed convolutions are not scored (transposed convs: their forward
takes an ``output_size`` the masked forward would have to replicate; they stay dense).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from graphprune.ops.registry import Trait, has_trait

Scores = dict[str, torch.Tensor]  # parameter fqn -> per-weight score, same shape as the weight
Masks = dict[str, torch.Tensor]  # parameter fqn -> bool tensor, True = kept



def scored_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Module path -> conv/linear module whose ``weight`` is scored (subclasses included)."""
    return {name: m for name, m in model.named_modules()
            if has_trait(m, Trait.FILTER_ROWS) and isinstance(getattr(m, "weight", None), nn.Parameter)}


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """Parameter fqn (``layer.weight``) -> the weight, for every scored module."""
    return {_fqn(name, "weight"): m.weight for name, m in scored_modules(model).items()}


def output_dims(model: nn.Module) -> dict[str, int]:
    """Parameter fqn -> the weight dim that indexes the layer's output channels (always 0 here)."""
    return {fqn: 0 for fqn in prunable_weights(model)}


def masked_values(model: nn.Module, masks: Masks | None, dtype: torch.dtype | None = None) -> Scores:
    """Detached copies of the prunable weights with ``masks`` applied (and any ``weight_mask``
    buffer a masked module already carries), optionally cast."""
    out = {}
    for name, m in scored_modules(model).items():
        fqn = _fqn(name, "weight")
        w = m.weight.detach().clone()
        buffer = getattr(m, "weight_mask", None)
        if isinstance(buffer, torch.Tensor):
            w = w * buffer
        if masks and fqn in masks:
            w = w * masks[fqn].to(w.dtype)
        out[fqn] = w.to(dtype) if dtype is not None else w
    return out


def private_copy(model: nn.Module, train: bool = False) -> nn.Module:
    """A deep copy to score on: its own tensors, so nothing the criterion does (BatchNorm statistics
    in train mode, weight substitution) reaches the caller's model or a state's shared parameters."""
    clone = copy.deepcopy(model)
    clone.train(train)
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def take(data: Iterable[Any], batches: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``batches`` (input, target) pairs of ``data``; an error if it has none."""
    if data is None:
        raise ValueError("this criterion needs data: an iterable of (input, target) batches")
    out: list[tuple[torch.Tensor, torch.Tensor]] = []
    iterator: Iterator[Any] = iter(data)
    for item in iterator:
        x, y = item[0], item[1]
        out.append((x, y))
        if len(out) >= batches:
            break
    if not out:
        raise ValueError("the data iterable yielded no batches")
    return out


def _fqn(module_name: str, attr: str) -> str:
    return f"{module_name}.{attr}" if module_name else attr
