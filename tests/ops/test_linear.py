"""The dense-layer family (graphprune/ops/linear.py). ``nn.Bilinear`` is the one-file demonstration of
the op table: its whole support (channels, shapes, liveness, resize, cost, fold) is declared there."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import graphprune
from graphprune.liveness.ops import GENERIC, kind_of
from graphprune.ops.registry import formula_for
from graphprune.shapes import Call, spec
from graphprune.trace import trace
from graphprune.values import propagate_counting
from tests.helpers import compile_and_check


class TwoTowers(nn.Module):
    """Two linear towers joined by a bilinear layer: its input widths are the towers' widths."""

    def __init__(self, norm: bool = False) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 16), nn.Linear(5, 12)
        self.join = nn.Bilinear(16, 12, 20)
        self.norm = nn.BatchNorm1d(20) if norm else nn.Identity()
        self.head = nn.Linear(20, 3)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.join(torch.relu(self.a(x1)), torch.relu(self.b(x2))))
        return self.head(torch.relu(h))


def _inputs(rows: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(rows, 6, generator=g), torch.randn(rows, 5, generator=g)


def test_bilinear_is_pruned_through_both_inputs_and_its_output() -> None:
    result = compile_and_check(TwoTowers(), _inputs(), sparsity=0.5)
    join = result.module.join
    assert tuple(join.weight.shape) == (10, 8, 6)  # out, in1, in2 all halved
    assert (join.out_features, join.in1_features, join.in2_features) == (10, 8, 6)  # resize
    assert tuple(result.module.a.weight.shape) == (8, 6) and tuple(result.module.b.weight.shape) == (6, 5)
    assert result.report.unknown_ops == []
    # MACs: the bilinear is rows x out x in1 x in2, which torch's FLOP counter does not count
    assert result.report.macs_before == 8 * (16 * 6 + 12 * 5 + 20 * 16 * 12 + 3 * 20)
    assert result.report.macs_after == 8 * (8 * 6 + 6 * 5 + 10 * 8 * 6 + 3 * 10)


def test_a_mac_budget_is_met_through_the_bilinear_cost() -> None:
    plan = {"prune": [{"select": "*", "budget": {"macs": 0.5}, "score": "l2"}], "allocate": {"scope": "global"}}
    result = compile_and_check(TwoTowers(), _inputs(), plan=plan)
    ratio = result.report.macs_after / result.report.macs_before
    assert 0.45 <= ratio <= 0.5


def test_a_batch_norm_after_a_bilinear_folds_into_it() -> None:
    model = TwoTowers(norm=True)
    result = compile_and_check(model, _inputs(), sparsity=0.25, plan={"emit": {"fuse": True}})
    assert not any(isinstance(m, nn.BatchNorm1d) for m in result.module.modules())


@pytest.mark.parametrize(("x1", "x2", "expected"), [((4, 6), (4, 5), (4, 7)), ((2, 3, 6), (2, 3, 5), (2, 3, 7)),
                                                    ((4, 6), (3, 5), None), ((4, 5), (4, 6), None)])
def test_bilinear_shape_formula(x1: tuple, x2: tuple, expected: tuple | None) -> None:
    m = nn.Bilinear(6, 5, 7)
    got = formula_for(nn.Bilinear)(Call((spec(torch.empty(x1)), spec(torch.empty(x2))), {}, m))
    assert (None if got is None else got.shape) == expected
    if expected is not None:
        assert expected == tuple(m(torch.randn(x1), torch.randn(x2)).shape)


def test_bilinear_shapes_come_from_the_formula(monkeypatch: pytest.MonkeyPatch) -> None:
    gm = trace(TwoTowers().eval(), num_inputs=2)
    inputs = _inputs()
    values, macs = propagate_counting(gm, inputs)

    def broken(self: nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise AssertionError("Bilinear ran: its shape did not come from the formula")

    monkeypatch.setattr(nn.Bilinear, "forward", broken)
    assert propagate_counting(gm, inputs) == (values, macs)
    assert macs == 8 * (16 * 6 + 12 * 5 + 20 * 16 * 12 + 3 * 20)


def test_bilinear_liveness_is_declared_generic() -> None:
    gm = trace(TwoTowers().eval(), num_inputs=2)
    assert kind_of(next(n for n in gm.graph.nodes if n.target == "join"), gm) == GENERIC


def test_a_bilinear_input_with_untracked_channels_keeps_its_width() -> None:
    """Without a producer to prune with, the bilinear's input dims stay whole; its output still prunes."""

    class Raw(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.join, self.head = nn.Bilinear(6, 5, 20), nn.Linear(20, 3)

        def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(self.join(x1, x2)))

    result = graphprune.compile(Raw().eval(), _inputs(), sparsity=0.5)
    assert tuple(result.module.join.weight.shape) == (10, 6, 5)
