"""A tiny ShuffleNetV2: channel split with ``chunk``, channel shuffle with view-transpose-view.

Why: ``x.chunk(2, dim=1)`` sends half the channels through a branch and half straight to a
``torch.cat``; the shuffle then interleaves the two halves, so an output channel's position is a
permutation of its producer's. A pruner must follow channels through split, concat and a
reshape-based permutation, and keep the two halves equal in size (or shuffle would not be valid).
"""

from __future__ import annotations

import torch
from torch import nn

from models_zoo._common import ImageInputs, conv_bn, finish, seeded

SHUFFLE_GROUPS = 2


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave ``groups`` equal channel groups: (B, g, C/g, H, W) -> transpose -> (B, C, H, W)."""
    batch, channels, height, width = x.size()
    x = x.view(batch, groups, channels // groups, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batch, channels, height, width)


def _pointwise(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(*conv_bn(cin, cout, 1), nn.ReLU())


class ShuffleUnit(nn.Module):
    """Stride 1: split, transform one half, concat, shuffle. Stride 2: two downsampling branches."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        half = cout // 2
        branch_in = cin if stride > 1 else cin // 2
        if stride > 1:
            self.branch1 = nn.Sequential(*conv_bn(cin, cin, 3, stride, groups=cin), *_pointwise(cin, half))
        self.branch2 = nn.Sequential(
            *_pointwise(branch_in, half),
            *conv_bn(half, half, 3, stride, groups=half),
            *_pointwise(half, half),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            passthrough, transformed = x.chunk(2, dim=1)
            out = torch.cat((passthrough, self.branch2(transformed)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, SHUFFLE_GROUPS)


class TinyShuffleNet(nn.Module):
    """stem 24 -> stage (48: down + 1 unit) -> stage (96: down + 2 units) -> 1x1 conv 256 -> head."""

    def __init__(
        self, num_classes: int = 10, stages: tuple[tuple[int, int], ...] = ((48, 1), (96, 2))
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(3, 24, 3), nn.ReLU())
        units: list[nn.Module] = []
        cin = 24
        for width, repeats in stages:
            units.append(ShuffleUnit(cin, width, stride=2))
            units += [ShuffleUnit(width, width, stride=1) for _ in range(repeats)]
            cin = width
        self.stages = nn.Sequential(*units)
        self.head = _pointwise(cin, 256)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.stages(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def shufflenet_tiny(input_size: int = 32, num_classes: int = 10) -> tuple[nn.Module, ImageInputs]:
    """ShuffleNetV2-style net (split, shuffle, two-branch stride-2 units) for 32x32 inputs."""
    with seeded():
        return finish(TinyShuffleNet(num_classes), input_size)
