"""Pooling family (graphprune/ops/pooling.py): pooling keeps channels; formulas of pooling layers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.ops.checks import check_function, check_layer, key_id, removes_channels_exactly, t

pytestmark = pytest.mark.usefixtures("single_thread")


class Conv1dAndPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv1d(3, 8, 3), nn.Conv1d(8, 2, 1)

    def forward(self, x):
        return self.b(F.max_pool1d(F.gelu(self.a(x)), 2)).amax(-1)


def test_conv1d_and_pool_remove_channels_exactly():
    removes_channels_exactly(Conv1dAndPool, lambda: torch.randn(2, 3, 10))


LAYERS = [
    (nn.MaxPool2d(3, 2, 1), t(1, 2, 7, 8)), (nn.MaxPool2d(3, 2, ceil_mode=True), t(1, 2, 8, 8)),
    (nn.MaxPool2d(2, dilation=2, padding=1), t(2, 5, 5)), (nn.MaxPool2d(2, padding=2), t(1, 2, 8, 8)),
    (nn.AvgPool2d(3, 2, 1, ceil_mode=True), t(1, 2, 6, 6)), (nn.AvgPool1d(2), t(1, 3, 7)),
    (nn.AdaptiveAvgPool2d(1), t(2, 3, 5, 5)), (nn.AdaptiveAvgPool2d((None, 2)), t(2, 3, 5, 5)),
    (nn.AdaptiveMaxPool1d(3), t(2, 3, 5)),
]
FUNCTIONS = [(F.adaptive_avg_pool2d, (t(1, 3, 5, 5), (2, 3)))]


@pytest.mark.parametrize("module,x", LAYERS, ids=key_id)
def test_layer_formula_matches_torch(module, x):
    check_layer(module, x)


@pytest.mark.parametrize("key,args", FUNCTIONS, ids=key_id)
def test_function_formula_matches_torch(key, args):
    check_function(key, args)
