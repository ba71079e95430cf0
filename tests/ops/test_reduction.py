"""Reduction family (graphprune/ops/reduction.py): a statistic over channels is marked inexact (frozen in
exact mode), an index-valued one freezes; shape formulas of reductions and softmax; sums, means and
extrema of an all-zero channel are zero."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import graphprune
from graphprune.ops.registry import Method
from tests.helpers import compile_and_check
from tests.ops.checks import check_function, check_layer, conv_bn, key_id, t, zero_kind

pytestmark = pytest.mark.usefixtures("single_thread")


def test_reduction_over_channels_is_inexact_and_frozen_in_exact_mode():
    class Reduce(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = conv_bn(3, 8)
            self.b = nn.Conv2d(8, 2, 1)

        def forward(self, x):
            y = self.a(x)
            return (self.b(y) * y.mean(1, keepdim=True)).mean((2, 3))

    x = torch.randn(1, 3, 6, 6)
    loose = graphprune.compile(Reduce(), x, sparsity=0.5, statistics="renormalize")
    assert any("mean over a channel dim" in i["reason"] for i in loose.report.inexact)
    assert len(loose.report.kept["a.0.weight"][0]) == 4
    strict = compile_and_check(Reduce(), x, sparsity=0.5, exact=True)
    assert "a.0.weight" not in strict.report.kept
    # statistics = "exact" (the default): the mean is sum / C0 over the zeroed channels, masked-equivalent
    full = compile_and_check(Reduce(), x, sparsity=0.5)
    assert len(full.report.kept["a.0.weight"][0]) == 4 and full.report.inexact == []


def test_argmax_over_channels_freezes():
    class Arg(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = conv_bn(3, 8)

        def forward(self, x):
            return self.a(x).argmax(1)

    assert graphprune.compile(Arg(), torch.randn(1, 3, 6, 6), sparsity=0.5).report.kept == {}


LAYERS = [(nn.Softmax(dim=1), t(2, 3)), (nn.Softmax(dim=3), t(2, 3))]
FUNCTIONS = [(torch.mean, (t(2, 3, 4), (2, 3))), (Method("mean"), (t(2, 3, 4), -1, True)), (torch.sum, (t(2, 3, 4),)),
             (torch.softmax, (t(2, 3), -1))]


@pytest.mark.parametrize("module,x", LAYERS, ids=key_id)
def test_layer_formula_matches_torch(module, x):
    check_layer(module, x)


@pytest.mark.parametrize("key,args", FUNCTIONS, ids=key_id)
def test_function_formula_matches_torch(key, args):
    check_function(key, args)


@pytest.mark.parametrize("fn,zero", [
    (lambda x: x.sum(1), "copy"), (lambda x: torch.mean(x, 1), "copy"), (lambda x: torch.amax(x, 1), "copy"),
    (lambda x: x.std(1), "none"), (lambda x: x.prod(1), "none"), (lambda x: torch.softmax(x, 1), "none"),
])
def test_liveness_reads_the_zero_kind_the_family_declares(fn, zero):
    assert zero_kind(fn) == zero


class _LegacyVariance(nn.Module):
    """``torch.var(input, dim, unbiased, keepdim)``: the third positional is ``unbiased``, not ``keepdim``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 8, 1), nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.conv(x).flatten(2).transpose(1, 2)
        return self.head(torch.var(tokens, 1, True, False)) + self.head(tokens.std(1, True, False))


def test_the_legacy_variance_signature_reads_keepdim_from_its_fourth_argument():
    """Before, the rule read ``unbiased=True`` as keepdim, left the channels on dim 2 of a 2-d result, and
    removal failed ("the pruned graph does not run")."""
    from graphprune.testing import masked_equivalence_error

    model, x = _LegacyVariance().eval(), torch.randn(2, 3, 5, 5)
    result = graphprune.compile(model, x, sparsity=0.5, capture="fx")
    assert len(result.report.kept["conv.weight"][0]) == 4
    assert masked_equivalence_error(model, result.module, result.report.kept, (x,)) < 1e-5
