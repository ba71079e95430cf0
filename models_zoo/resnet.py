"""CIFAR ResNet-20/56 (He et al. 2016, section 4.2) with 1x1 conv+BN projection shortcuts.

Why: the canonical pruning benchmark. Residual adds tie the channels of every block in a stage into
one coupled group; the projection shortcuts (option B) at stage boundaries start a new group and are
themselves prunable convs, which the identity/zero-pad variant (option A) would hide.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from models_zoo._common import ImageInputs, conv_bn, initialised, seeded

STAGE_WIDTHS = (16, 32, 64)


class BasicBlock(nn.Module):
    """conv3x3-norm-ReLU-conv3x3-norm plus shortcut (1x1 conv-norm when the shape changes), then ReLU.
    ``conv_norm(cin, cout, kernel, stride)`` builds each conv-norm unit (BatchNorm by default)."""

    def __init__(self, cin: int, cout: int, stride: int = 1,
                 conv_norm: Callable[[int, int, int, int], nn.Module] = conv_bn) -> None:
        super().__init__()
        self.conv1 = conv_norm(cin, cout, 3, stride)
        self.relu = nn.ReLU()
        self.conv2 = conv_norm(cout, cout, 3, 1)
        needs_projection = stride != 1 or cin != cout
        self.shortcut = conv_norm(cin, cout, 1, stride) if needs_projection else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.relu(self.conv1(x)))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem conv, three stages of ``blocks_per_stage`` BasicBlocks, global pool, linear head."""

    def __init__(self, blocks_per_stage: int, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, STAGE_WIDTHS[0]), nn.ReLU())
        layers: list[nn.Module] = []
        cin = STAGE_WIDTHS[0]
        for stage, width in enumerate(STAGE_WIDTHS):
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                layers.append(BasicBlock(cin, width, stride))
                cin = width
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def _build(depth: int, input_size: int, num_classes: int, seed: int, init: str) -> tuple[nn.Module, ImageInputs]:
    assert (depth - 2) % 6 == 0, "CIFAR ResNet depth must be 6n+2"
    with seeded(seed):
        return initialised(CifarResNet((depth - 2) // 6, num_classes), input_size, init)


def resnet20(input_size: int = 32, num_classes: int = 10, seed: int = 0,
             init: str = "zoo") -> tuple[nn.Module, ImageInputs]:
    """ResNet-20 for 32x32 inputs (3 blocks per stage, ~0.27M parameters). ``init="paper"``: the
    pruning papers' initialisation (``_common.paper_init``)."""
    return _build(20, input_size, num_classes, seed, init)


def resnet56(input_size: int = 32, num_classes: int = 10, seed: int = 0,
             init: str = "zoo") -> tuple[nn.Module, ImageInputs]:
    """ResNet-56 for 32x32 inputs (9 blocks per stage, ~0.86M parameters); ``seed``/``init`` as resnet20."""
    return _build(56, input_size, num_classes, seed, init)
