"""Pruned graphs keep the input sizes the dense graph lets vary: the export capture asks for dynamic dims
(``dynamic``), and removal rewrites a computed size argument (``self.width * h * w``) as an expression
(``graphprune.symbolic``, sympy) instead of the number it had at the example size."""

from __future__ import annotations

import operator

import pytest
import sympy
import torch
import torch.fx as fx
from torch import nn

import graphprune
from graphprune.errors import InputError, PlanError
from graphprune.symbolic import SizeExpr, emit, rescaled, size_expr
from graphprune.testing import masked_equivalence_error

pytestmark = pytest.mark.usefixtures("single_thread")
HALF = {"prune": [{"select": "*", "sparsity": 0.5}]}


class TokensFromAFeatureMap(nn.Module):
    """Flattens a feature map with its channel count written as a literal attribute, as research code does."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.conv = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 8, 3, padding=1)
        self.width, self.proj = 8, nn.Linear(8, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(torch.relu(self.stem(x)))
        b, _, h, w = y.shape
        tokens = self.proj(y.view(b, self.width, h * w).transpose(1, 2))
        flat = y.reshape(b, self.width * h * w)
        return tokens.sum(1) + flat.sum(1, keepdim=True)


@pytest.mark.parametrize("capture,dynamic", [("fx", "auto"), ("export", "all")])
def test_a_literal_channel_count_times_run_time_sizes_stays_dynamic(capture: str, dynamic: str) -> None:
    """Before, removal replaced ``self.width * h * w`` by its pruned value at 8x8 (256): the pruned graph
    then failed at any other image size, which the dense model accepts."""
    model = TokensFromAFeatureMap().eval()
    result = graphprune.compile(model, (torch.randn(2, 3, 8, 8),), HALF, capture=capture, dynamic=dynamic)
    assert len(result.report.kept["conv.weight"][0]) == 4  # the literal's channels did shrink
    assert "static_sizes" not in result.report.artifacts
    for shape in [(2, 3, 8, 8), (3, 3, 12, 10)]:
        x = torch.randn(*shape)
        assert masked_equivalence_error(model, result.module, result.report.kept, (x,)) < 1e-5


def test_a_size_it_cannot_read_becomes_the_examples_and_the_report_says_so() -> None:
    """``(h * w) ** 1`` is arithmetic ``graphprune.symbolic`` does not read: the literal is the honest
    fallback, and the report lists the node, since the pruned graph now runs at the example's size only."""
    result = graphprune.compile(_PowWidth().eval(), (torch.randn(2, 3, 8, 8),), HALF, capture="fx")
    static = result.report.artifacts["static_sizes"]
    assert list(static) == ["reshape"] and "pow" in static["reshape"][0]
    with pytest.raises(RuntimeError, match="invalid for input of size"):
        result.module(torch.randn(2, 3, 12, 10))


class _PowWidth(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.width = nn.Conv2d(3, 8, 3, padding=1), 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        b, _, h, w = y.shape
        return y.reshape(b, self.width * operator.pow(h * w, 1)).sum(1)


def test_export_records_which_dims_it_keeps_dynamic() -> None:
    model = TokensFromAFeatureMap().eval()
    x = torch.randn(2, 3, 8, 8)
    auto = graphprune.compile(model, (x,), HALF, capture="export").report.artifacts["trace"]
    assert [(d["input"], d["dim"], d["min"], d["max"]) for d in auto["dynamic_dims"]] == [("x", 0, 2, None)]
    every = graphprune.compile(model, (x,), HALF, capture="export", dynamic="all").report.artifacts["trace"]
    assert [d["dim"] for d in every["dynamic_dims"]] == [0, 2, 3]  # the channel dim is fixed by the conv
    static = graphprune.compile(model, (x,), HALF, capture="export", dynamic="static")
    assert static.report.artifacts["trace"]["dynamic_dims"] == []
    assert static.report.artifacts["trace"]["static"] == "dynamic = 'static'"
    with pytest.raises(RuntimeError):
        static.module(torch.randn(3, 3, 8, 8))


def test_token_ids_get_a_dynamic_sequence_length() -> None:
    model = nn.Sequential(nn.Embedding(50, 16), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16)).eval()
    ids = torch.randint(0, 50, (2, 7))
    result = graphprune.compile(model, (ids,), HALF, capture="export")
    assert [d["dim"] for d in result.report.artifacts["trace"]["dynamic_dims"]] == [0, 1]
    other = torch.randint(0, 50, (4, 11))
    assert masked_equivalence_error(model, result.module, result.report.kept, (other,)) < 1e-6


def test_a_bad_dynamic_value_is_a_one_line_error() -> None:
    model = TokensFromAFeatureMap().eval()
    with pytest.raises(InputError, match="dynamic: expected one of 'auto', 'all', 'static', got 'batch'"):
        graphprune.compile(model, (torch.randn(2, 3, 8, 8),), HALF, dynamic="batch")
    with pytest.raises(PlanError, match=r"passes\.trace\.dynamic: expected one of 'auto', 'all', 'static', got 1"):
        graphprune.compile(model, (torch.randn(2, 3, 8, 8),), {**HALF, "passes": {"trace": {"dynamic": 1}}})


def _sizes_graph() -> tuple[fx.Graph, fx.Node, fx.Node, fx.Node]:
    graph = fx.Graph()
    x = graph.placeholder("x")
    h = graph.call_function(torch.ops.aten.sym_size.int, (x, 2))
    w = graph.call_function(torch.ops.aten.sym_size.int, (x, 3))
    return graph, x, h, w


def test_size_arithmetic_reads_as_sympy_and_rescales_by_the_channel_ratio() -> None:
    graph, _, h, w = _sizes_graph()
    prod = graph.call_function(operator.mul, (graph.call_function(operator.mul, (8, h)), w))
    size = size_expr(prod)
    H, W = (sympy.Symbol(n.name, integer=True, positive=True) for n in (h, w))
    assert size.expr == 8 * H * W
    assert rescaled(size, 512, 256).expr == 4 * H * W
    assert rescaled(size, 512, 192).expr == 3 * H * W
    odd = rescaled(SizeExpr(H * W, size.sources), 64, 24)  # 3/8 of h*w: exact only as a floor division
    assert odd.expr == sympy.floor(3 * H * W / 8)
    assert rescaled(SizeExpr(sympy.Integer(64)), 64, 32) is None  # a constant is a literal's job
    assert size_expr(graph.call_function(operator.pow, (h, 2))) is None


def test_an_emitted_expression_computes_the_rescaled_size_at_every_size() -> None:
    graph, x, h, w = _sizes_graph()
    prod = graph.call_function(operator.mul, (graph.call_function(operator.mul, (8, h)), w))
    size = size_expr(graph.call_function(operator.add, (prod, graph.call_function(operator.floordiv, (h, 2)))))
    scaled = rescaled(size, 8 * 4 * 6 + 2, 4 * 4 * 6 + 1)  # halved: 8*h*w + h//2 -> 4*h*w + h//4 at h=4
    graph.output(emit(graph, scaled))
    module = fx.GraphModule(nn.Module(), graph)
    for hh, ww in [(4, 6), (10, 3), (2, 9)]:
        expected = (8 * hh * ww + hh // 2) * (4 * 4 * 6 + 1) // (8 * 4 * 6 + 2)
        assert module(torch.empty(1, 1, hh, ww)) == expected
