"""Element-wise family (graphprune/ops/elementwise.py): residual adds couple both sides, loose scale
parameters are sliced, GLU halves and PReLU slopes follow their channels; shape formulas; the zero
kinds that unused-path removal reads from the family's declarations."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from graphprune.ops.registry import SPECS, Liveness, Method, declare, methods, register
from tests.helpers import compile_and_check, randomize_norms
from tests.ops.checks import check_function, check_layer, conv_bn, key_id, removes_channels_exactly, t, zero_kind
from tests.ops.op_builders import invoke

pytestmark = pytest.mark.usefixtures("single_thread")


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.body = conv_bn(3, 8), conv_bn(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x = self.stem(x)
        return self.head((x + self.body(x)).mean((2, 3)))


def test_residual_add_couples_both_sides():
    r = compile_and_check(randomize_norms(Residual()), torch.randn(1, 3, 8, 8), sparsity=0.5)
    assert r.report.kept["stem.0.weight"][0] == r.report.kept["body.0.weight"][0]


def test_loose_layer_scale_parameter_is_sliced():
    class LayerScale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = conv_bn(3, 8)
            self.gamma = nn.Parameter(torch.rand(8) + 0.5)
            self.out = nn.Conv2d(8, 2, 1)

        def forward(self, x):
            return self.out(self.conv(x) * self.gamma.reshape(1, -1, 1, 1)).mean((2, 3))

    r = compile_and_check(randomize_norms(LayerScale()), torch.randn(1, 3, 6, 6), sparsity=0.5)
    assert r.module.gamma.shape == (4,) and r.report.kept["gamma"][0] == r.report.kept["conv.0.weight"][0]


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


@pytest.mark.parametrize("cls,make_input", [(Glu, lambda: torch.randn(3, 4)), (PRelu, lambda: torch.randn(1, 3, 4, 4))],
                         ids=["glu", "prelu"])
def test_rule_removes_channels_exactly(cls, make_input):
    removes_channels_exactly(cls, make_input)


class ComparedChannels(nn.Module):
    """A comparison of the channels with a scalar, added back to them: its channels are theirs."""

    def __init__(self, compare) -> None:
        super().__init__()
        self.a, self.b, self.compare = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 2, 1), compare

    def forward(self, x):
        h = self.a(x)
        return self.b(h + self.compare(h)).mean((2, 3))


# ``x > 0`` traces as operator.gt; the Tensor methods are recorded as call_method nodes (``invoke``)
COMPARISONS = [*(getattr(operator, name) for name in ("gt", "lt", "ge", "le", "eq", "ne")),
               *methods("__gt__", "__lt__", "__ge__", "__le__", "__eq__", "__ne__")]


@pytest.mark.parametrize("key", COMPARISONS, ids=key_id)
def test_comparison_operators_prune_through_like_the_torch_functions(key):
    torch.manual_seed(0)
    r = compile_and_check(ComparedChannels(lambda h: invoke(key, h, 0.1)), torch.randn(2, 3, 4, 4), sparsity=0.5)
    assert r.report.unknown_ops == []
    assert len(r.report.kept["a.weight"][0]) < 8
    assert r.report.kept["b.weight"][1] == r.report.kept["a.weight"][0]


LAYERS = [(nn.ReLU(), t(2, 3)), (nn.GELU(), t(2, 3)), (nn.Hardswish(), t(3)), (nn.Dropout(0.2).eval(), t(2, 3)),
          (nn.Identity(), t(2, 3))]
FUNCTIONS = [
    (operator.add, (t(2, 3, 1), t(4))), (operator.mul, (t(2, 3), 2.0)), (operator.truediv, (3, t(2, 3))),
    (operator.add, (t(2, 3), t(4))), (torch.add, (t(2, 1), t(1, 5))), (Method("mul"), (t(2, 3), t(3))),
    (F.relu, (t(2, 3),)), (F.gelu, (t(2, 3),)), (F.dropout, (t(2, 3), 0.1, False)),
]


@pytest.mark.parametrize("module,x", LAYERS, ids=key_id)
def test_layer_formula_matches_torch(module, x):
    check_layer(module, x)


@pytest.mark.parametrize("key,args", FUNCTIONS, ids=key_id)
def test_function_formula_matches_torch(key, args):
    check_function(key, args)


ZERO_KINDS = [  # (op on x, the zero kind its declaration gives unused-path removal)
    (F.relu, "copy"), (torch.sigmoid, "none"), (lambda x: x + x, "add"), (lambda x: x * x, "mul"),
    (lambda x: x / (x * x + 1), "div"), (lambda x: x.float(), "copy"), (nn.Identity(), "copy"),
    (lambda x: torch.clamp(x, -1.0, 1.0), "copy"), (lambda x: torch.clamp(x, 0.1, 1.0), "none"),
    (lambda x: x.clamp_min(0.0), "copy"), (lambda x: x.clamp_max(-0.5), "none"),
    (lambda x: F.hardtanh(x), "copy"), (lambda x: F.hardtanh(x, 0.5, 1.0), "none"),
    (nn.ReLU6(), "copy"), (nn.Hardtanh(0.5, 1.0), "none"),
    # a comparison of a zero channel is not zero (0 <= 0 is true): the operators declare what torch.gt does
    (lambda x: torch.gt(x, 0), "none"), (lambda x: x > 0, "none"), (lambda x: x <= 0, "none"),
    (lambda x: x == 0, "none"), (lambda x: invoke(Method("__ne__"), x, 0), "none"),
]


@pytest.mark.parametrize("fn,zero", ZERO_KINDS)
def test_liveness_reads_the_zero_kind_the_family_declares(fn, zero):
    assert zero_kind(fn) == zero


@torch.fx.wrap
def scaled_copy(x: torch.Tensor) -> torch.Tensor:
    return x * 2


def test_one_declaration_gives_a_new_op_its_zero_kind():
    """A user's op is supported by its registration alone: unused-path removal keeps no op list."""
    register([scaled_copy], liveness=Liveness.ELEMENTWISE)(lambda ctx: None)
    try:
        assert zero_kind(lambda x: scaled_copy(x)) == "none"
        declare([scaled_copy], zero="copy")
        assert zero_kind(lambda x: scaled_copy(x)) == "copy"
    finally:
        SPECS.pop(scaled_copy)
