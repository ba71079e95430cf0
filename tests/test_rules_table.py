"""One tiny model per rule-table entry not covered elsewhere: each compiles, removes channels and
computes the masked dense function exactly."""

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


class Einsum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.out = nn.Linear(4, 8), nn.Linear(4, 8), nn.Linear(5, 2)

    def forward(self, x):
        scores = torch.einsum("bid,bjd->bij", self.q(x), self.k(x))
        return self.out(scores).mean(1)


class Glu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 16), nn.Linear(8, 2)

    def forward(self, x):
        return self.b(F.glu(self.a(x), -1))


class PRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.act, self.b = nn.Conv2d(3, 8, 1), nn.PReLU(8), nn.Conv2d(8, 2, 1)
        nn.init.uniform_(self.act.weight, -0.5, 0.5)

    def forward(self, x):
        return self.b(self.act(self.a(x))).mean((2, 3))


class PadAndExpand(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 2, 1)
        self.bias = nn.Parameter(torch.randn(8, 1, 1))

    def forward(self, x):
        y = F.pad(self.a(x), (1, 1, 1, 1))
        return self.b(y + self.bias.expand(8, y.shape[2], y.shape[3])).mean((2, 3))


class Repeat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 6), nn.Linear(12, 2)

    def forward(self, x):
        return self.b(self.a(x).repeat(1, 2))


class Unflatten(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 12), nn.Linear(3, 2)

    def forward(self, x):
        return self.b(self.a(x).unflatten(-1, (4, 3))).sum(1)


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


class Stack(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(4, 6), nn.Linear(4, 6), nn.Linear(6, 2)

    def forward(self, x):
        return self.c(torch.stack([self.a(x), self.b(x)], 1)).sum(1)


class Conv1dAndPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv1d(3, 8, 3), nn.Conv1d(8, 2, 1)

    def forward(self, x):
        return self.b(F.max_pool1d(F.gelu(self.a(x)), 2)).amax(-1)


class Conv3d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.norm, self.b = nn.Conv3d(2, 6, 3), nn.BatchNorm3d(6), nn.Conv3d(6, 2, 1)

    def forward(self, x):
        return self.b(F.interpolate(self.norm(self.a(x)), scale_factor=2)).mean((2, 3, 4))


CASES = {
    "conv_transpose": (ConvTranspose, lambda: torch.randn(1, 3, 6, 6)),
    "embedding": (Embedding, lambda: torch.randint(0, 20, (2, 5))),
    "pixel_shuffle": (PixelShuffle, lambda: torch.randn(1, 3, 4, 4)),
    "pixel_unshuffle": (PixelUnshuffle, lambda: torch.randn(1, 3, 4, 4)),
    "einsum": (Einsum, lambda: torch.randn(2, 5, 4)),
    "glu": (Glu, lambda: torch.randn(3, 4)),
    "prelu": (PRelu, lambda: torch.randn(1, 3, 4, 4)),
    "pad_expand": (PadAndExpand, lambda: torch.randn(1, 3, 4, 4)),
    "repeat": (Repeat, lambda: torch.randn(3, 4)),
    "unflatten": (Unflatten, lambda: torch.randn(3, 4)),
    "instance_norm": (InstanceNorm, lambda: torch.randn(1, 3, 6, 6)),
    "functional_conv_linear": (Functional, lambda: torch.randn(1, 3, 6, 6)),
    "stack": (Stack, lambda: torch.randn(3, 4)),
    "conv1d_pool": (Conv1dAndPool, lambda: torch.randn(2, 3, 10)),
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
