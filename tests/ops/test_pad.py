"""Pad family (graphprune/ops/pad.py): padding spatial dims keeps channels (with an expanded bias); only
a zero pad value keeps an all-zero channel zero."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import graphprune
from graphprune.plan import load_plan
from tests.ops.checks import removes_channels_exactly, zero_kind

pytestmark = pytest.mark.usefixtures("single_thread")


class PadAndExpand(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 2, 1)
        self.bias = nn.Parameter(torch.randn(8, 1, 1))

    def forward(self, x):
        y = F.pad(self.a(x), (1, 1, 1, 1))
        return self.b(y + self.bias.expand(8, y.shape[2], y.shape[3])).mean((2, 3))


def test_pad_and_expand_remove_channels_exactly():
    removes_channels_exactly(PadAndExpand, lambda: torch.randn(1, 3, 4, 4))


@pytest.mark.parametrize("fn,zero", [
    (lambda x: F.pad(x, (1, 1)), "copy"), (lambda x: F.pad(x, (1, 1), value=0.5), "none"),
    (lambda x: F.pad(x, (1, 1), mode="reflect"), "copy"), (nn.ZeroPad2d(1), "copy"),
    (nn.ConstantPad2d(1, 0.5), "none"), (nn.ReflectionPad2d(1), "copy"),
    (lambda x: torch.constant_pad_nd(x, (1, 1)), "copy"), (lambda x: torch.constant_pad_nd(x, (1, 1), 0.0), "copy"),
    (lambda x: torch.constant_pad_nd(x, (1, 1), 1.0), "none"),
    (lambda x: torch.constant_pad_nd(x, (1, 1), value=1.0), "none"),
])
def test_liveness_reads_the_zero_kind_the_family_declares(fn, zero):
    assert zero_kind(fn) == zero


class ZeroChannelPaddedWithOnes(nn.Module):
    """Channel 0 of ``a`` is all zero, but constant padding with 1 puts ones around it, which ``b`` reads:
    the channel is live."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 2, 1)
        with torch.no_grad():
            self.a.weight[0] = 0
            self.a.bias[0] = 0

    def forward(self, x):
        return self.b(torch.constant_pad_nd(self.a(x), (1, 1, 1, 1), 1.0))


def test_unused_path_removal_keeps_a_zero_channel_padded_with_a_nonzero_value():
    torch.manual_seed(0)
    model, x = ZeroChannelPaddedWithOnes().eval(), torch.randn(2, 3, 4, 4)
    result = graphprune.compile(model, x, plan=load_plan({"prune": [{"sparsity": 0.0}], "purify": {}}))
    assert any(t["pass"] == "remove-unused-paths" for t in result.report.schedule)
    with torch.no_grad():
        torch.testing.assert_close(result.module(x), model(x), rtol=1e-5, atol=1e-5)
    assert result.module.get_submodule("a").out_channels == 4
