"""Concat family (graphprune/ops/concat.py): concatenation maps a consumer's columns to each source,
split sizes are rewritten, stack couples its inputs; shape formulas of cat, chunk and split."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from graphprune.ops.registry import Method
from tests.helpers import compile_and_check, randomize_norms
from tests.ops.checks import check_function, conv_bn, key_id, removes_channels_exactly, t

pytestmark = pytest.mark.usefixtures("single_thread")


class Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = conv_bn(3, 6), conv_bn(3, 10)
        self.c = conv_bn(16, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.c(torch.cat([self.a(x), self.b(x)], 1)).amax((2, 3)))


def test_concat_maps_consumer_columns_to_each_source():
    r = compile_and_check(randomize_norms(Concat()), torch.randn(1, 3, 8, 8), sparsity=0.5)
    ka, kb = r.report.kept["a.0.weight"][0], r.report.kept["b.0.weight"][0]
    assert r.report.kept["c.0.weight"][1] == ka + [6 + i for i in kb]


def test_split_sizes_are_rewritten():
    class Split(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = conv_bn(3, 12)
            self.b, self.c = nn.Conv2d(4, 2, 1), nn.Conv2d(8, 2, 1)

        def forward(self, x):
            p, q = torch.split(self.a(x), [4, 8], dim=1)
            return (self.b(p) + self.c(q)).mean((2, 3))

    r = compile_and_check(randomize_norms(Split()), torch.randn(1, 3, 6, 6), sparsity=0.5)
    assert r.module.b.in_channels + r.module.c.in_channels == 6


class Stack(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(4, 6), nn.Linear(4, 6), nn.Linear(6, 2)

    def forward(self, x):
        return self.c(torch.stack([self.a(x), self.b(x)], 1)).sum(1)


def test_stack_removes_channels_exactly():
    removes_channels_exactly(Stack, lambda: torch.randn(3, 4))


FUNCTIONS = [
    (torch.cat, ([t(2, 3), t(4, 3)],)), (torch.cat, ([t(2, 3), t(2, 5)], 1)), (torch.cat, ([t(2, 3), t(2, 4)],)),
    (Method("chunk"), (t(2, 7), 3, 1)), (torch.chunk, (t(6, 2), 4)), (Method("split"), (t(7, 2), 3)),
    (torch.split, (t(7, 2), [2, 5])), (torch.split, (t(7, 2), [2, 4])),
]


@pytest.mark.parametrize("key,args", FUNCTIONS, ids=key_id)
def test_function_formula_matches_torch(key, args):
    check_function(key, args)
