"""Expand family (graphprune/ops/expand.py): repeat keeps every copy of a channel; expand's formula."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from graphprune.ops.registry import Method
from tests.ops.checks import check_function, key_id, removes_channels_exactly, t

pytestmark = pytest.mark.usefixtures("single_thread")


class Repeat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 6), nn.Linear(12, 2)

    def forward(self, x):
        return self.b(self.a(x).repeat(1, 2))


def test_repeat_removes_channels_exactly():
    removes_channels_exactly(Repeat, lambda: torch.randn(3, 4))


FUNCTIONS = [(Method("expand"), (t(3, 1), 2, -1, 4)), (Method("expand"), (t(3, 2), 3, 4))]


@pytest.mark.parametrize("key,args", FUNCTIONS, ids=key_id)
def test_function_formula_matches_torch(key, args):
    check_function(key, args)
