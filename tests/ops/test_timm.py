"""timm's registrations (``graphprune/ops/timm.py``): made only once timm is imported (graphprune never
imports it), and its leaves behave as the torch layers they are declared like."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from graphprune.liveness.ops import Kind, kind_of
from graphprune.ops.registry import SPECS, Liveness, lookup
from graphprune.trace import trace
from tests.helpers import compile_and_check

norm_act = pytest.importorskip("timm.layers.norm_act")
conv2d_same = pytest.importorskip("timm.layers.conv2d_same")

LAZY = """
import sys
import graphprune.ops
from graphprune.ops.registry import lookup
assert "timm" not in sys.modules, "graphprune imported timm"
from timm.layers.norm_act import BatchNormAct2d
print(lookup(BatchNormAct2d).liveness.name)
"""


def test_registered_when_timm_is_imported_and_not_before() -> None:
    out = subprocess.run([sys.executable, "-c", LAZY], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["NORM_ACT_MODULE"]


def test_conv2d_same_is_a_conv() -> None:
    assert lookup(conv2d_same.Conv2dSame).propagate is SPECS[nn.Conv2d].propagate


@pytest.mark.parametrize(("act", "kind"), [(nn.ReLU, Kind("norm", "norm")), (nn.Sigmoid, Kind("none", "per-channel"))])
def test_batch_norm_act_leaf_is_exact_where_its_activation_keeps_zero(act: type, kind: Kind) -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), norm_act.BatchNormAct2d(8, act_layer=act), nn.Conv2d(8, 2, 1))
    assert lookup(norm_act.BatchNormAct2d).liveness is Liveness.NORM_ACT_MODULE
    gm = trace(model.eval(), extra_leaves=[norm_act.BatchNormAct2d])
    assert kind_of(next(n for n in gm.graph.nodes if n.target == "1"), gm) == kind
    r = compile_and_check(model, torch.randn(1, 3, 6, 6), sparsity=0.5, leaf_modules=(norm_act.BatchNormAct2d,))
    assert r.module.get_submodule("1").num_features == 4 and r.report.macs_after < r.report.macs_before
