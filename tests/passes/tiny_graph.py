"""The tiny hand-built graph of the core passes' tests (``conftest.py`` builds a fixture per pipeline
stage on it): conv -> bn -> relu -> channel shuffle -> conv, and its example input."""

from __future__ import annotations

import torch
from torch import nn


class Tiny(nn.Module):
    """conv -> bn -> relu -> channel shuffle (view/transpose/view) -> conv: 5 interesting nodes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv1(x)))
        n, c, h, w = y.shape
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.conv2(y)


X = torch.randn(2, 3, 6, 6)
