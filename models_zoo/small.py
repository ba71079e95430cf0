"""Small classifiers for fast pruning-at-initialisation experiments on CPU (digits, shapes).

Why: the PAI benchmark trains hundreds of sparse networks on two shared CPU cores, so the models must
train in seconds on 16x16 inputs while still being over-parameterised enough for 99 % sparsity to
mean something. ``small_cnn`` is a plain conv stack (no skip connections: layer collapse cuts it);
``resnet8`` is the CIFAR ResNet family at one BasicBlock per stage (residual groups, projections);
``plain_cnn`` is ``small_cnn`` without BatchNorm (convs with biases), the BN-free network PX's analysis
is exact for.
"""

from __future__ import annotations

from torch import nn

from models_zoo._common import ImageInputs, conv_bn, initialised, seeded
from models_zoo.resnet import CifarResNet


class SmallCNN(nn.Module):
    """Four conv-BN-ReLU layers (two stride-2), global average pool, linear head; ``norm=False``: conv
    (with bias)-ReLU layers."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 32, 64), num_classes: int = 10, norm: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for index, width in enumerate(widths):
            stride = 2 if index in (1, 3) else 1
            unit = conv_bn(cin, width, 3, stride=stride) if norm else [nn.Conv2d(cin, width, 3, stride, padding=1)]
            layers += [*unit, nn.ReLU()]
            cin = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def small_cnn(input_size: int = 32, num_classes: int = 10, seed: int = 0,
              init: str = "zoo") -> tuple[nn.Module, ImageInputs]:
    """Plain 4-conv CNN, widths 16/32/32/64 (~33k weights); any input size (global pooling).
    ``init="paper"``: the pruning papers' initialisation (``_common.paper_init``)."""
    with seeded(seed):
        return initialised(SmallCNN((16, 32, 32, 64), num_classes), input_size, init)


def resnet8(input_size: int = 32, num_classes: int = 10, seed: int = 0,
            init: str = "zoo") -> tuple[nn.Module, ImageInputs]:
    """CIFAR ResNet-8: one BasicBlock per stage, widths 16/32/64 (~77k weights); ``init`` as small_cnn."""
    with seeded(seed):
        return initialised(CifarResNet(1, num_classes), input_size, init)


def plain_cnn(input_size: int = 32, num_classes: int = 10, seed: int = 0,
              init: str = "zoo") -> tuple[nn.Module, ImageInputs]:
    """``small_cnn`` without BatchNorm: four conv(bias)-ReLU layers, widths 16/32/32/64; ``init`` as small_cnn."""
    with seeded(seed):
        return initialised(SmallCNN((16, 32, 32, 64), num_classes, norm=False), input_size, init)
