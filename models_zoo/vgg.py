"""CIFAR VGG-11 with BatchNorm whose classifier flattens a 2x2x512 feature map.

Why: with four (not five) max-pools a 32x32 input leaves a 2x2 map, so ``flatten`` turns each of the
512 conv channels into 4 consecutive Linear input features (channel-major). Pruning a conv channel
must drop exactly those 4 columns; a 1x1 map (the usual CIFAR VGG) would hide index-mapping bugs.
"""

from __future__ import annotations

import torch
from torch import nn

from graphprune.errors import InputError
from models_zoo._common import ImageInputs, conv_bn, finish, seeded

POOL = "M"
VGG11_CONFIG: tuple[int | str, ...] = (64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512)
DOWNSAMPLE = 16  # four 2x2 max-pools


class CifarVGG(nn.Module):
    """VGG feature stack, then flatten (C*H*W features) -> Linear -> ReLU -> Linear."""

    def __init__(self, input_size: int = 32, num_classes: int = 10, hidden: int = 256) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for item in VGG11_CONFIG:
            if item == POOL:
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [*conv_bn(cin, int(item)), nn.ReLU()]
                cin = int(item)
        self.features = nn.Sequential(*layers)
        spatial = input_size // DOWNSAMPLE
        self.classifier = nn.Sequential(
            nn.Linear(cin * spatial * spatial, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def vgg11_bn(input_size: int = 32, num_classes: int = 10) -> tuple[nn.Module, ImageInputs]:
    """VGG-11-BN for 32x32 inputs; the classifier sees a flattened 512x2x2 map."""
    if input_size < DOWNSAMPLE or input_size % DOWNSAMPLE:
        raise InputError(f"vgg11_bn needs an input size that is a multiple of {DOWNSAMPLE}, got {input_size}")
    with seeded():
        return finish(CifarVGG(input_size, num_classes), input_size)
