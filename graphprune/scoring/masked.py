"""Irregular masks that live in the model: conv/linear modules whose forward multiplies the weight
by a registered ``weight_mask`` buffer.

Design (why not the alternatives): the module keeps its class's parameter names (``conv.weight``,
``conv.bias``) so every other pass, the report and ``state_dict`` consumers see the same fqns, unlike
``torch.nn.utils.prune`` / parametrizations (``weight_orig``, ``parametrizations.weight.original``).
The weight is also zeroed where masked, so a consumer that reads ``weight`` directly (fusion,
export to a format that drops the buffer) sees the sparse weight. Because the forward multiplies by
the mask, the gradient of a masked weight is exactly zero (training keeps it zero with any optimizer
and weight decay), and ``torch.export`` records the multiplication with the mask as a buffer.

The channel analysis knows these modules: their rule is the base conv/linear rule plus the mask's
dims unified with the weight's, so removing channels slices the mask with its weight.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from graphprune.channels.analysis import ChannelAnalysis
from graphprune.channels.context import RuleContext
from graphprune.channels.elements import Member
from graphprune.channels.layout import Layout
from graphprune.ops.conv import conv_module
from graphprune.ops.linear import linear_module
from graphprune.ops.registry import Liveness, register


class MaskedConv1d(nn.Conv1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.weight_mask, self.bias)


class MaskedConv2d(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.weight_mask, self.bias)


class MaskedConv3d(nn.Conv3d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.weight_mask, self.bias)


class MaskedLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.weight_mask, self.bias)


MASKED: dict[type, type] = {nn.Conv1d: MaskedConv1d, nn.Conv2d: MaskedConv2d, nn.Conv3d: MaskedConv3d,
                            nn.Linear: MaskedLinear}
MASKED_TYPES = tuple(MASKED.values())
for _masked in MASKED_TYPES:
    _masked.graphprune_leaf = True  # traced as a leaf (it has a channel rule), never into F.conv2d


def masked_module(module: nn.Module, mask: torch.Tensor) -> nn.Module:
    """A masked twin of ``module`` (a shallow copy with its own parameter dicts): weight zeroed where
    ``mask`` is False (a new tensor, the original is not written) and ``weight_mask`` registered."""
    kind = type(module)
    base = kind.__mro__[1] if kind in MASKED_TYPES else kind
    if base not in MASKED:  # a subclass with its own forward: the mask would not be applied
        raise TypeError(f"cannot mask a {kind.__name__}: only {sorted(t.__name__ for t in MASKED)}")
    weight = module.weight
    if mask.shape != weight.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} differs from weight shape {tuple(weight.shape)}")
    twin = copy.copy(module)
    twin._parameters = dict(module._parameters)
    twin._buffers = dict(module._buffers)
    twin._modules = dict(module._modules)
    twin.__class__ = MASKED[base]
    keep = mask.to(device=weight.device, dtype=weight.dtype)
    previous = module._buffers.get("weight_mask")
    if previous is not None:
        keep = keep * previous
    twin.weight = nn.Parameter(weight.detach() * keep, requires_grad=weight.requires_grad)
    twin.register_buffer("weight_mask", keep.clone())
    return twin


def install_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Replace every module whose ``<path>.weight`` is in ``masks`` by its masked twin, in place on
    ``model``'s module hierarchy (call it on a private copy: compile states own theirs)."""
    for fqn, mask in masks.items():
        path, _, attr = fqn.rpartition(".")
        if attr != "weight":
            raise ValueError(f"masks are per weight ('<module>.weight'), got {fqn}")
        model.set_submodule(path, masked_module(model.get_submodule(path), mask))


def with_mask_members(analysis: ChannelAnalysis | None, weights: list[str]) -> ChannelAnalysis | None:
    """An analysis whose table also lists each ``<module>.weight_mask`` with its weight's elements, so
    a removal planned on the analysis made before the masks were installed slices them too (a fresh
    analysis gets the same from the masked modules' rules)."""
    if analysis is None:
        return None
    table = copy.copy(analysis.table)
    table.members = dict(table.members)
    for (fqn, dim), member in analysis.table.members.items():
        if fqn in weights:
            mask = f"{fqn}_mask"
            table.members[(mask, dim)] = Member(mask, dim, member.ids)
    return dataclasses.replace(analysis, table=table)


def _tie_mask(ctx: RuleContext) -> None:
    """The mask's dims carry the weight's channels (only the dims the base rule made members)."""
    for dim in range(ctx.module.weight.ndim):
        if (f"{ctx.node.target}.weight", dim) not in ctx.table.members:
            continue
        w, m = ctx.param("weight", dim), ctx.param("weight_mask", dim)
        if w is not None and m is not None:
            ctx.table.unify(w, m)


@register([MaskedConv1d, MaskedConv2d, MaskedConv3d], liveness=Liveness.LINEAR)
def masked_conv_module(ctx: RuleContext) -> Layout:
    out = conv_module(ctx)
    _tie_mask(ctx)
    return out


@register([MaskedLinear], liveness=Liveness.LINEAR)
def masked_linear_module(ctx: RuleContext) -> Layout:
    out = linear_module(ctx)
    _tie_mask(ctx)
    return out
