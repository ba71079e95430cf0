"""One tiny model per rule-table entry not covered elsewhere (conv, embedding, norm layers; the other
families' models are in tests/ops/test_<family>.py): each compiles, removes channels and computes the
masked dense function exactly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import compile_and_check


class ConvTranspose(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.up, self.b = nn.Conv2d(3, 8, 3), nn.ConvTranspose2d(8, 6, 2, stride=2), nn.Conv2d(6, 2, 1)

    def forward(self, x):
        return self.b(F.relu(self.up(F.relu(self.a(x))))).mean((2, 3))


class Embedding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb, self.fc = nn.Embedding(20, 8), nn.Linear(8, 3)

    def forward(self, idx):
        return self.fc(self.emb(idx)).sum(1)


class InstanceNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.norm, self.b = nn.Conv2d(3, 8, 3), nn.InstanceNorm2d(8, affine=True), nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.b(self.norm(self.a(x))).mean((2, 3))


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w1, self.b1 = nn.Parameter(torch.randn(8, 3, 3, 3) * 0.3), nn.Parameter(torch.randn(8))
        self.w2, self.w3 = nn.Parameter(torch.randn(8, 1, 3, 3) * 0.3), nn.Parameter(torch.randn(2, 8) * 0.3)

    def forward(self, x):
        y = F.relu(F.conv2d(x, self.w1, self.b1, padding=1))
        y = F.conv2d(y, self.w2, None, 1, 1, 1, 8)  # depthwise with positional groups
        return F.linear(y.mean((2, 3)), self.w3)


class Conv3d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.norm, self.b = nn.Conv3d(2, 6, 3), nn.BatchNorm3d(6), nn.Conv3d(6, 2, 1)

    def forward(self, x):
        return self.b(F.interpolate(self.norm(self.a(x)), scale_factor=2)).mean((2, 3, 4))


CASES = {
    "conv_transpose": (ConvTranspose, lambda: torch.randn(1, 3, 6, 6)),
    "embedding": (Embedding, lambda: torch.randint(0, 20, (2, 5))),
    "instance_norm": (InstanceNorm, lambda: torch.randn(1, 3, 6, 6)),
    "functional_conv_linear": (Functional, lambda: torch.randn(1, 3, 6, 6)),
    "conv3d_interpolate": (Conv3d, lambda: torch.randn(1, 2, 5, 5, 5)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_removes_channels_exactly(case):
    cls, make_input = CASES[case]
    torch.manual_seed(0)
    model = cls().eval()
    result = compile_and_check(model, make_input(), sparsity=0.5)
    assert result.report.unknown_ops == []
    assert result.report.params_after < result.report.params_before
