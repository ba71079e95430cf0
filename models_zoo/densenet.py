"""A tiny DenseNet-BC: two dense blocks (growth 12) joined by BN-ReLU-conv1x1-avgpool transitions.

Why: every dense layer reads ``torch.cat`` of *all* earlier feature maps in its block, so one
producer's channels occupy different offsets in several concatenations. Pruning a layer's output
must shift the channel offsets of every later consumer, the hardest case for concat bookkeeping.
"""

from __future__ import annotations

import torch
from torch import nn

from models_zoo._common import ImageInputs, finish, seeded

GROWTH = 12
LAYERS_PER_BLOCK = 4
BOTTLENECK = 4  # the 1x1 conv produces BOTTLENECK * GROWTH channels
STEM_WIDTH = 2 * GROWTH


def _bn_relu_conv(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)
    )


class DenseLayer(nn.Module):
    """BN-ReLU-conv1x1 bottleneck then BN-ReLU-conv3x3 producing ``growth`` new channels."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.bottleneck = _bn_relu_conv(cin, BOTTLENECK * growth, 1)
        self.conv = _bn_relu_conv(BOTTLENECK * growth, growth, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.bottleneck(x))


class DenseBlock(nn.Module):
    """Each layer consumes the concatenation of the block input and all previous layer outputs."""

    def __init__(self, cin: int, num_layers: int, growth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(cin + i * growth, growth) for i in range(num_layers))
        self.out_channels = cin + num_layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1 (halving channels) then 2x2 average pooling."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(*_bn_relu_conv(cin, cout, 1), nn.AvgPool2d(2))


class TinyDenseNet(nn.Module):
    """stem conv3x3 -> (dense block -> transition) x2 -> BN-ReLU -> global pool -> linear."""

    def __init__(self, num_classes: int = 10, num_blocks: int = 2) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        channels = STEM_WIDTH
        for _ in range(num_blocks):
            block = DenseBlock(channels, LAYERS_PER_BLOCK, GROWTH)
            stages += [block, Transition(block.out_channels, block.out_channels // 2)]
            channels = block.out_channels // 2
        self.stem = nn.Conv2d(3, STEM_WIDTH, 3, padding=1, bias=False)
        self.stages = nn.Sequential(*stages)
        self.head_norm = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head_norm(self.stages(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def densenet_tiny(input_size: int = 32, num_classes: int = 10) -> tuple[nn.Module, ImageInputs]:
    """Two dense blocks of four bottleneck layers, growth 12, for 32x32 inputs."""
    with seeded():
        return finish(TinyDenseNet(num_classes), input_size)
