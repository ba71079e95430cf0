"""Convolution family (graphprune/ops/conv.py): convolutions and transposed convolutions, as modules and
as functionals over loose weights. Depthwise convolutions lose whole groups, grouped ones narrow every
group alike (or fall back to whole groups where that is finer), tiny models remove channels exactly, and
the conv shape formulas agree with torch."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import models_zoo
from tests.helpers import compile_and_check, randomize_norms
from tests.ops.checks import check_layer, conv_bn, t

pytestmark = pytest.mark.usefixtures("single_thread")


class Depthwise(nn.Module):
    def __init__(self, mult: int) -> None:
        super().__init__()
        self.pw = conv_bn(3, 8)
        self.dw = conv_bn(8, 8 * mult, groups=8)
        self.out = nn.Conv2d(8 * mult, 4, 1)

    def forward(self, x):
        return self.out(self.dw(self.pw(x))).mean((2, 3))


@pytest.mark.parametrize("mult", [1, 2])
def test_depthwise_prunes_whole_groups(mult):
    r = compile_and_check(randomize_norms(Depthwise(mult)), torch.randn(1, 3, 8, 8), sparsity=0.5)
    dw = r.module.get_submodule("dw.0")
    assert dw.groups == dw.in_channels == 4 and dw.out_channels == 4 * mult


def test_grouped_conv_narrows_every_group_alike():
    class Grouped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.g = conv_bn(3, 16), conv_bn(16, 16, groups=4)
            self.head = nn.Linear(16, 2)

        def forward(self, x):
            return self.head(self.g(self.a(x)).mean((2, 3)))

    r = compile_and_check(randomize_norms(Grouped()), torch.randn(1, 3, 8, 8), sparsity=0.5)
    g = r.module.get_submodule("g.0")
    assert g.in_channels == 8 and g.out_channels == 8 and g.groups == 4 and g.weight.shape[1] == 2
    kept_in = r.report.kept["g.0.weight"][1]  # the same two positions of every group's 4 inputs
    kept_a = r.report.kept["a.0.weight"][0]
    assert len(kept_in) == 2 and kept_a == [4 * k + j for k in range(4) for j in kept_in]


def test_grouped_conv_falls_back_to_whole_groups_when_narrowing_would_be_coarser():
    """gn_net's GroupNorm(8) ties contiguous runs of 4 channels; with groups=4 convs, narrowing
    within groups would merge each block's 32 channels into 2, removing whole conv groups leaves 4."""
    model, inputs = models_zoo.load("zoo:gn_net")
    r = compile_and_check(model, inputs, sparsity=0.5)
    conv = r.module.get_submodule("blocks.0.conv1.0")
    assert conv.groups == 2 and conv.weight.shape[1] == 8 and conv.in_channels == 16


class ConvTranspose(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.up, self.b = nn.Conv2d(3, 8, 3), nn.ConvTranspose2d(8, 6, 2, stride=2), nn.Conv2d(6, 2, 1)

    def forward(self, x):
        return self.b(F.relu(self.up(F.relu(self.a(x))))).mean((2, 3))


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


CONV = [
    (nn.Conv2d(4, 8, 3), t(2, 4, 9, 9)),
    (nn.Conv2d(4, 8, 3, stride=2, padding=1, dilation=2), t(1, 4, 10, 7)),
    (nn.Conv2d(4, 8, 3, groups=4, bias=False), t(1, 4, 5, 5)),
    (nn.Conv2d(4, 8, (1, 3), padding="same"), t(1, 4, 5, 6)),
    (nn.Conv2d(4, 8, 3, padding="valid"), t(4, 5, 5)),  # unbatched
    (nn.Conv1d(3, 6, 5, stride=3), t(2, 3, 20)),
    (nn.Conv3d(2, 4, 3, padding=(0, 1, 2)), t(1, 2, 4, 5, 6)),
    (nn.Conv2d(4, 8, 3), t(1, 5, 9, 9)),  # wrong channels
    (nn.Conv2d(4, 8, 5), t(1, 4, 3, 3)),  # kernel larger than input
]


def _layer_id(value: Any) -> str | None:
    return type(value).__name__ if isinstance(value, nn.Module) else None


@pytest.mark.parametrize("module,x", CONV, ids=_layer_id)
def test_layer_formula_matches_torch(module, x):
    check_layer(module, x)
