"""Shuffle family (graphprune/ops/shuffle.py): pixel shuffle and unshuffle keep whole channel grids."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.ops.checks import removes_channels_exactly

pytestmark = pytest.mark.usefixtures("single_thread")


class PixelShuffle(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.shuffle, self.b = nn.Conv2d(3, 16, 1), nn.PixelShuffle(2), nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.b(self.shuffle(self.a(x))).mean((2, 3))


class PixelUnshuffle(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(16, 2, 1)

    def forward(self, x):
        return self.b(F.pixel_unshuffle(self.a(x), 2)).mean((2, 3))


@pytest.mark.parametrize("cls", [PixelShuffle, PixelUnshuffle], ids=["pixel_shuffle", "pixel_unshuffle"])
def test_rule_removes_channels_exactly(cls):
    removes_channels_exactly(cls, lambda: torch.randn(1, 3, 4, 4))
