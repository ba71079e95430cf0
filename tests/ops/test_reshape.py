"""Reshape family (graphprune/ops/reshape.py): flatten keeps blocks of positions per channel, unflatten
sizes are re-derived; shape formulas."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from graphprune.ops.registry import Method
from tests.helpers import compile_and_check, randomize_norms
from tests.ops.checks import check_function, check_layer, conv_bn, key_id, removes_channels_exactly, t

pytestmark = pytest.mark.usefixtures("single_thread")


class FlattenLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = conv_bn(3, 6)
        self.fc = nn.Linear(6 * 4, 5)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.conv(x), 2), 1))


def test_flatten_to_linear_keeps_blocks_of_spatial_positions():
    r = compile_and_check(randomize_norms(FlattenLinear()), torch.randn(1, 3, 8, 8), sparsity=0.5)
    channels = r.report.kept["conv.0.weight"][0]
    assert r.report.kept["fc.weight"][1] == [4 * c + k for c in channels for k in range(4)]


class Unflatten(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 12), nn.Linear(3, 2)

    def forward(self, x):
        return self.b(self.a(x).unflatten(-1, (4, 3))).sum(1)


def test_unflatten_removes_channels_exactly():
    removes_channels_exactly(Unflatten, lambda: torch.randn(3, 4))


class UnflattenModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.unflatten, self.b = nn.Linear(4, 12), nn.Unflatten(-1, (4, 3)), nn.Linear(3, 2)

    def forward(self, x):
        return self.b(self.unflatten(self.a(x))).sum(1)


def test_unflatten_module_sizes_follow_the_removed_channels():
    torch.manual_seed(0)
    r = compile_and_check(UnflattenModule(), torch.randn(3, 4), sparsity=0.5)
    kept = len(r.report.kept["b.weight"][1])
    assert kept < 3
    assert len(r.report.kept["a.weight"][0]) == 4 * kept
    assert tuple(r.module.unflatten.unflattened_size) == (4, kept)


LAYERS = [(nn.Flatten(), t(2, 3, 4, 5)), (nn.Flatten(0, 2), t(2, 3, 4, 5))]
FUNCTIONS = [
    (torch.flatten, (t(2, 3, 4), 1)), (Method("flatten"), (t(2, 3, 4), 0, 1)),
    (Method("view"), (t(2, 3, 4), 6, -1)), (Method("view"), (t(2, 3, 4), (4, 6))), (Method("view"), (t(2, 3), 4, -1)),
    (torch.reshape, (t(2, 3, 4), (-1,))), (Method("unsqueeze"), (t(2, 3), 2)),
]


@pytest.mark.parametrize("module,x", LAYERS, ids=key_id)
def test_layer_formula_matches_torch(module, x):
    check_layer(module, x)


@pytest.mark.parametrize("key,args", FUNCTIONS, ids=key_id)
def test_function_formula_matches_torch(key, args):
    check_function(key, args)
