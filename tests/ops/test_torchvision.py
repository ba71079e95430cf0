"""torchvision's registrations (``graphprune/ops/torchvision.py``): frozen batch norm, stochastic depth
and Swin's relative-position bias behave as the torch ops they are declared like."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

from graphprune.liveness.ops import Kind, kind_of
from graphprune.ops.registry import SPECS, Liveness, formula_for, lookup
from graphprune.resize import fix_attributes
from graphprune.shapes import Call, spec
from graphprune.trace import trace
from tests.helpers import compile_and_check

misc = pytest.importorskip("torchvision.ops.misc")
stochastic = importlib.import_module("torchvision.ops.stochastic_depth")


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 2, 1)
        self.drop = stochastic.StochasticDepth(0.2, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        return self.c(h + self.drop(self.b(h)))


def test_stochastic_depth_is_the_identity_in_eval_mode() -> None:
    x = spec(torch.randn(2, 3))
    shape = formula_for(stochastic.stochastic_depth)
    assert shape(Call((x, 0.2, "row", False), {})) is x  # eval: the input itself
    assert shape(Call((x, 0.2, "row", True), {})) is None  # training: random, left to the kernel
    gm = trace(Residual().eval())
    node = next(n for n in gm.graph.nodes if n.target is stochastic.stochastic_depth)
    assert kind_of(node, gm) == Kind("copy", "per-channel")  # keeps zeros, channel by channel
    assert SPECS[stochastic.StochasticDepth].zero == "copy"  # declared with nn.Identity's alias
    r = compile_and_check(Residual(), torch.randn(1, 3, 6, 6), sparsity=0.5)
    assert r.report.macs_after < r.report.macs_before


def test_frozen_batch_norm_is_a_batch_norm_to_the_channels() -> None:
    rule = lookup(misc.FrozenBatchNorm2d)
    assert rule is not None and rule.propagate is SPECS[nn.BatchNorm2d].propagate
    assert rule.liveness is Liveness.NORM_MODULE
    bn = misc.FrozenBatchNorm2d(8)
    bn.num_features = 8  # torchvision keeps no size attribute; one that exists must follow the weight
    bn.weight = bn.weight[:5]
    fix_attributes(bn, 5)
    assert bn.num_features == 5


def test_frozen_batch_norm_prunes_as_a_leaf() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), misc.FrozenBatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 2, 1))
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
        model[1].running_mean.normal_()
    r = compile_and_check(model, torch.randn(1, 3, 6, 6), sparsity=0.5, leaf_modules=(misc.FrozenBatchNorm2d,))
    assert r.module.get_submodule("1").weight.shape == (4,)
    assert next(n for n in r.module.graph.nodes if n.op == "call_module" and n.target == "1")
    assert r.report.inexact == []
