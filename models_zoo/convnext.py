"""``layerscale_net``: a tiny ConvNeXt with a loose layer-scale parameter.

Why: ConvNeXt blocks mix channels-first convs with channels-last ``LayerNorm``/``Linear`` via
``permute``, so a pruner must map conv channels (dim 1) to the last dim after the permute and back.
The layer-scale ``gamma`` is a bare ``nn.Parameter`` (not a module weight) multiplied into the
branch: it has one entry per channel and must be sliced together with the convs and linears.
The downsampling layer (channels-first LayerNorm + strided conv) starts a new channel group.
"""

from __future__ import annotations

import torch
from torch import nn

from models_zoo._common import ImageInputs, example_image, init_weights, seeded

WIDTHS = (32, 64)
BLOCKS_PER_STAGE = 2
EXPANSION = 4


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dim of an NCHW tensor, via permute to NHWC and back."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """dwconv7x7 -> NHWC -> LayerNorm -> Linear(4x) -> GELU -> Linear -> gamma * -> NCHW -> + x."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, EXPANSION * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(EXPANSION * dim, dim)
        self.gamma = nn.Parameter(torch.empty(dim).uniform_(0.1, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dwconv(x).permute(0, 2, 3, 1)
        out = self.fc2(self.act(self.fc1(self.norm(out))))
        out = self.gamma * out
        return x + out.permute(0, 3, 1, 2)


class LayerScaleNet(nn.Module):
    """2x2/2 stem + LN, stage(32), downsample (LN + 2x2/2 conv), stage(64), pool, LN, linear."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        first, second = WIDTHS
        self.stem = nn.Sequential(nn.Conv2d(3, first, 2, stride=2), LayerNorm2d(first))
        self.stage1 = nn.Sequential(*(ConvNeXtBlock(first) for _ in range(BLOCKS_PER_STAGE)))
        self.downsample = nn.Sequential(LayerNorm2d(first), nn.Conv2d(first, second, 2, stride=2))
        self.stage2 = nn.Sequential(*(ConvNeXtBlock(second) for _ in range(BLOCKS_PER_STAGE)))
        self.norm = nn.LayerNorm(second)
        self.head = nn.Linear(second, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage2(self.downsample(self.stage1(self.stem(x))))
        return self.head(self.norm(x.mean(dim=(-2, -1))))


def layerscale_net(input_size: int = 32, num_classes: int = 10) -> tuple[nn.Module, ImageInputs]:
    """ConvNeXt-like net (two stages of two blocks, widths 32/64) for 32x32 inputs."""
    with seeded():
        model = LayerScaleNet(num_classes)
        init_weights(model)
    return model.eval(), example_image(input_size)
