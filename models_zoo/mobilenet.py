"""A tiny MobileNetV2/V3-style network: inverted residuals, squeeze-excitation, Hardswish, and a
depthwise conv with channel multiplier 2.

Why: depthwise convs (groups == channels) force the input and output channels of the conv to be
pruned together; the multiplier-2 depthwise conv (groups=C, out=2C) maps each input channel to a
*pair* of outputs, so one input channel couples to two output channels. Squeeze-excitation
multiplies a feature map by a per-channel gate computed from itself, coupling the SE convs' channel
dims to the block's expanded width; residual adds couple block inputs and outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from models_zoo._common import ImageInputs, conv_bn, finish, seeded


class SqueezeExcite(nn.Module):
    """x * hardsigmoid(conv1x1(relu(conv1x1(avgpool(x)))))."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gate(self.expand(self.relu(self.reduce(self.pool(x)))))
        return x * scale


class InvertedResidual(nn.Module):
    """expand 1x1 -> depthwise 3x3 -> [SE] -> project 1x1, with a residual add when shapes match."""

    def __init__(
        self, cin: int, cout: int, expand: int, stride: int = 1, se: bool = False, hardswish: bool = False
    ) -> None:
        super().__init__()
        hidden = cin * expand
        act: type[nn.Module] = nn.Hardswish if hardswish else nn.ReLU6
        self.expand = nn.Sequential(*conv_bn(cin, hidden, 1), act())
        self.depthwise = nn.Sequential(*conv_bn(hidden, hidden, 3, stride, groups=hidden), act())
        self.se = SqueezeExcite(hidden, max(8, hidden // 4)) if se else nn.Identity()
        self.project = conv_bn(hidden, cout, 1)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return x + out if self.use_residual else out


class DepthwiseMultiplierBlock(nn.Module):
    """Depthwise conv with channel multiplier 2 (groups=cin, out=2*cin), then a 1x1 projection."""

    def __init__(self, cin: int, cout: int, stride: int = 2) -> None:
        super().__init__()
        self.depthwise = nn.Sequential(*conv_bn(cin, 2 * cin, 3, stride, groups=cin), nn.Hardswish())
        self.project = conv_bn(2 * cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.depthwise(x))


class TinyMobileNet(nn.Module):
    """stem -> 5 blocks (16->16->24->24->32->32) -> 1x1 head conv -> pool -> linear."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(3, 16, 3), nn.Hardswish())
        self.blocks = nn.Sequential(
            InvertedResidual(16, 16, expand=4),
            InvertedResidual(16, 24, expand=4, stride=2),
            InvertedResidual(24, 24, expand=3, se=True, hardswish=True),
            DepthwiseMultiplierBlock(24, 32, stride=2),
            InvertedResidual(32, 32, expand=4, se=True, hardswish=True),
        )
        self.head = nn.Sequential(*conv_bn(32, 128, 1), nn.Hardswish())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def mobilenet_tiny(input_size: int = 32, num_classes: int = 10) -> tuple[nn.Module, ImageInputs]:
    """MobileNetV2-style net with SE, Hardswish and a multiplier-2 depthwise conv, for 32x32 inputs."""
    with seeded():
        return finish(TinyMobileNet(num_classes), input_size)
