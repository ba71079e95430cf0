"""Tensor arithmetic for folding an eval-mode BatchNorm into an adjacent convolution or linear layer.

An eval-mode BatchNorm is a per-channel affine map ``y = x * scale + shift``. Folded into the layer
*before* it, the layer's output channels are scaled and its bias becomes ``bias * scale + shift``.
Folded into the layer *after* it, that layer's input channels are scaled and the shift, pushed through
the weights, adds to its bias; that is exact only where every output sees a full window of BatchNorm
outputs, i.e. with no zero padding (the caller checks). The arithmetic runs in float64 and returns new
tensors in the weights' dtype: nothing is written in place (parameters may still be the user's).
"""

from __future__ import annotations

import torch
from torch import Tensor


def bn_affine(mean: Tensor, var: Tensor, weight: Tensor | None, bias: Tensor | None,
              eps: float) -> tuple[Tensor, Tensor]:
    """(scale, shift) in float64 with ``bn(x) == x * scale + shift`` per channel."""
    scale = torch.rsqrt(var.detach().double() + eps)
    if weight is not None:
        scale = scale * weight.detach().double()
    shift = -mean.detach().double() * scale
    if bias is not None:
        shift = shift + bias.detach().double()
    return scale, shift


def _grouped(weight: Tensor, groups: int, transposed: bool) -> Tensor:
    """The weight as ``[groups, out/groups, in/groups, *kernel]`` (transposed convs store in first)."""
    w = weight.detach().double()
    if transposed:  # [in, out/g, *k] -> [g, in/g, out/g, *k] -> [g, out/g, in/g, *k]
        return w.reshape(groups, w.shape[0] // groups, *w.shape[1:]).transpose(1, 2)
    return w.reshape(groups, w.shape[0] // groups, *w.shape[1:])


def _ungrouped(grouped: Tensor, like: Tensor, transposed: bool) -> Tensor:
    g = grouped.transpose(1, 2) if transposed else grouped
    return g.reshape(like.shape).to(like.dtype).contiguous()


def fold_into_producer(weight: Tensor, bias: Tensor | None, scale: Tensor, shift: Tensor, groups: int = 1,
                       transposed: bool = False) -> tuple[Tensor, Tensor]:
    """Weight and bias of ``bn(layer(x))`` for a conv / transposed conv / linear ``layer``."""
    w = _grouped(weight, groups, transposed)
    per_out = scale.reshape(groups, -1, *([1] * (w.ndim - 2)))
    new_bias = shift if bias is None else bias.detach().double() * scale + shift
    return _ungrouped(w * per_out, weight, transposed), new_bias.to(weight.dtype)


def fold_into_consumer(weight: Tensor, bias: Tensor | None, scale: Tensor, shift: Tensor,
                       groups: int = 1) -> tuple[Tensor, Tensor]:
    """Weight and bias of ``layer(bn(x))`` for a (non-transposed) conv or linear ``layer`` that sees
    every input position with its full kernel (no zero padding)."""
    w = _grouped(weight, groups, transposed=False)  # [g, out/g, in/g, *k]
    per_in = scale.reshape(groups, 1, -1, *([1] * (w.ndim - 3)))
    pushed = (w * shift.reshape(groups, 1, -1, *([1] * (w.ndim - 3)))).flatten(2).sum(2).reshape(-1)
    new_bias = pushed if bias is None else bias.detach().double() + pushed
    return _ungrouped(w * per_in, weight, transposed=False), new_bias.to(weight.dtype)
