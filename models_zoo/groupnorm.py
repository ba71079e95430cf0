"""``gn_net``: a small residual CNN with GroupNorm and grouped convolutions.

Why: GroupNorm normalises over groups of channels and grouped convs (groups=4) only connect
channels within a group, so pruning must keep both group structures valid: equal channel counts
removed from every conv group, and a channel count still divisible by the GroupNorm group count
(8 here, deliberately different from the conv groups). Residual adds couple blocks' channels.
"""

from __future__ import annotations

import torch
from torch import nn

from models_zoo._common import ImageInputs, example_image, init_weights, seeded
from models_zoo.resnet import BasicBlock

CONV_GROUPS = 4
NORM_GROUPS = 8


def _conv_gn(
    cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = CONV_GROUPS
) -> nn.Sequential:
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)
    return nn.Sequential(conv, nn.GroupNorm(NORM_GROUPS, cout))


def _block(cin: int, cout: int, stride: int = 1) -> BasicBlock:
    """The CIFAR ResNet block with grouped conv-GN units instead of conv-BN."""
    return BasicBlock(cin, cout, stride, conv_norm=_conv_gn)


class GroupNormNet(nn.Module):
    """stem (dense conv-GN) -> res(32) -> res(32->64, /2) -> res(64) -> pool -> linear."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_gn(3, 32, groups=1), nn.ReLU())
        self.blocks = nn.Sequential(_block(32, 32), _block(32, 64, 2), _block(64, 64))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


def gn_net(input_size: int = 32, num_classes: int = 10) -> tuple[nn.Module, ImageInputs]:
    """Residual CNN with GroupNorm(8) and groups=4 convs, for 32x32 inputs."""
    with seeded():
        model = GroupNormNet(num_classes)
        init_weights(model)
    return model.eval(), example_image(input_size)
