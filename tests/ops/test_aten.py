"""ATen ops of a ``torch.export`` capture (graphprune/ops/aten.py, the table of ATen twins of functional
keys): an in-place overload gets its out-of-place twin's rule, so later readers of the written tensor read
the write; an ATen op with no rule is named and frozen (the capture itself:
tests/capture/test_export_capture.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.helpers import compile_and_check

pytestmark = pytest.mark.usefixtures("single_thread")


class Rolled(nn.Module):
    """torch.roll over channels: aten.roll has no rule."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.roll(self.b(torch.relu(self.a(x))), 1, dims=1))


def test_an_unknown_aten_op_is_named_and_frozen() -> None:
    result = compile_and_check(Rolled(), torch.randn(2, 3, 8, 8), capture="export")
    assert result.report.unknown_ops == [{"node": "roll", "op": "aten.roll.default"}]
    assert any(f["reason"] == "no channel rule for aten.roll.default" for f in result.report.frozen)
    assert tuple(result.module.b.weight.shape) == (8, 4, 1, 1)  # roll's input channels all stay
    assert tuple(result.module.c.weight.shape) == (4, 8, 1, 1)
    assert result.module.a.weight.shape[0] == 4  # what does not reach roll is still pruned


class InPlace(nn.Module):
    """``y`` is written in place and read again after the write."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1), nn.Conv2d(16, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        z = self.b(y)
        y.add_(z)
        y.relu_()
        return self.c(torch.cat([y, z], 1))


def test_readers_of_a_tensor_written_in_place_read_the_write() -> None:
    result = compile_and_check(InPlace(), torch.randn(2, 3, 8, 8), capture="export")
    cat = next(n for n in result.state.gm.graph.nodes if n.target is torch.ops.aten.cat.default)
    assert [a.target for a in cat.args[0]] == [torch.ops.aten.relu_.default, torch.ops.aten.conv2d.default]
    assert result.report.params_after < result.report.params_before
