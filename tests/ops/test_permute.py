"""Permute family (graphprune/ops/permute.py): channels travel with their dim through movedim; shape
formulas of permute and transpose."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from graphprune.ops.registry import Method
from tests.helpers import compile_and_check
from tests.ops.checks import check_function, key_id, t

pytestmark = pytest.mark.usefixtures("single_thread")


class MoveChannelsLast(nn.Module):
    """(B, 8, H, W) -> movedim -> (B, H, W, 8) -> linear over the channels."""

    def __init__(self, move) -> None:
        super().__init__()
        self.conv, self.fc, self.move = nn.Conv2d(3, 8, 1), nn.Linear(8, 2), move

    def forward(self, x):
        return self.fc(self.move(self.conv(x)))


@pytest.mark.parametrize("move", [
    lambda h: torch.movedim(h, 1, -1), lambda h: torch.moveaxis(h, 1, 3), lambda h: h.movedim(1, -1),
    lambda h: h.moveaxis((1,), (3,)), lambda h: torch.movedim(h, [1, 2], [3, 1]),
], ids=["movedim", "moveaxis", "Tensor.movedim", "Tensor.moveaxis", "two-dims"])
def test_movedim_carries_the_channels_to_their_new_dim(move):
    torch.manual_seed(0)
    r = compile_and_check(MoveChannelsLast(move), torch.randn(2, 3, 5, 5), sparsity=0.5)
    assert r.report.unknown_ops == []
    kept = r.report.kept["conv.weight"][0]
    assert len(kept) < 8
    assert r.report.kept["fc.weight"][1] == kept


FUNCTIONS = [(Method("permute"), (t(2, 3, 4), 2, 0, 1)), (torch.permute, (t(2, 3, 4), (0, 2, 1))),
             (Method("transpose"), (t(2, 3, 4), -1, 0))]


@pytest.mark.parametrize("key,args", FUNCTIONS, ids=key_id)
def test_function_formula_matches_torch(key, args):
    check_function(key, args)
