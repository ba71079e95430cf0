"""capture = "export": the torch.export capture (graphprune.capture, ATen ops in graphprune/ops/aten.py,
conv.py, norm.py) prunes CNNs with masked equivalence and the same widths as the fx capture, freezes and
names an ATen op it does not know, and ``capture = "auto"`` falls back to it where fx cannot trace."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import graphprune
import models_zoo
from graphprune.errors import InputError, PlanError
from tests.conftest import sweep_mode
from tests.helpers import compile_and_check
from tests.test_masked_equivalence import TORCHVISION_CNNS

pytestmark = pytest.mark.usefixtures("single_thread")

ZOO = [e.name for e in models_zoo.catalog()]  # every zoo model, as tests/test_masked_equivalence.py
NEEDS_EXACT = {"zoo:vit_tiny", "zoo:layerscale_net"}
TORCHVISION_CI = ["densenet121", "mobilenet_v2", "efficientnet_b0", "regnet_y_400mf", "googlenet"]


def _widths(result: graphprune.api.Result) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in (*result.module.named_parameters(), *result.module.named_buffers())}


def _both(model: nn.Module, inputs: tuple, **kw) -> tuple:
    exported = compile_and_check(model, inputs, capture="export", **kw)
    traced = compile_and_check(model, inputs, capture="fx", **kw)
    return exported, traced


@pytest.mark.parametrize("spec", ZOO)
def test_export_prunes_zoo_cnns_like_fx(spec: str) -> None:
    model, inputs = models_zoo.load(spec)
    exported, traced = _both(model, tuple(inputs), exact=spec in NEEDS_EXACT)
    assert exported.report.artifacts["trace"]["capture"] == "export"
    assert exported.report.unknown_ops == []
    assert exported.report.params_after < exported.report.params_before
    assert _widths(exported) == _widths(traced)
    assert exported.report.kept == traced.report.kept  # same groups, same scores: the same channels


@pytest.mark.parametrize("factory", [torchvision.models.resnet18, torchvision.models.mobilenet_v3_small])
def test_export_prunes_torchvision_cnns_like_fx(factory) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    exported, traced = _both(factory(), (torch.randn(1, 3, 64, 64),))
    assert exported.report.unknown_ops == []
    assert _widths(exported) == _widths(traced)
    assert any(n.target is torch.ops.aten.add_.Tensor for n in exported.state.gm.graph.nodes)  # in-place kept


def test_export_prunes_torchvision_vit_like_fx() -> None:
    """nn.MultiheadAttention's projections unflatten into heads (``aten.unflatten.int``, a twin of
    ``torch.unflatten`` whose rewrite reads (dim, sizes)): both captures agree on every width."""
    torch.manual_seed(0)
    exported, traced = _both(torchvision.models.vit_b_16(image_size=32), (torch.randn(1, 3, 32, 32),), sparsity=0.5)
    assert exported.report.unknown_ops == []
    assert _widths(exported) == _widths(traced)
    assert exported.report.params_after < 0.8 * exported.report.params_before


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TORCHVISION_CNNS) if sweep_mode() == "full" else TORCHVISION_CI)
def test_export_passes_the_torchvision_masked_equivalence_sweep(name: str) -> None:
    """tests/test_masked_equivalence.py's torchvision CNNs (all 23 with GRAPHPRUNE_SWEEP=full): both captures
    are exact and agree on every width."""
    model, inputs = models_zoo.load(f"torchvision:{name}", input_size=TORCHVISION_CNNS[name])
    exported, traced = _both(model, tuple(inputs), sparsity=0.5)
    assert exported.report.unknown_ops == [] and exported.report.inexact == []
    assert _widths(exported) == _widths(traced)


class SizeDependent(nn.Module):
    """Star-unpacks a shape and branches on an input size: fx cannot trace either."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.bn, self.c = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, *_ = x.shape
        y = torch.relu(self.bn(self.a(x)))
        if x.shape[2] == 16:
            y = y * 2
        return self.c(y).reshape(b, -1)


def test_auto_falls_back_to_export_and_says_why() -> None:
    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(graphprune.errors.TraceError, match="unpacking"):
        graphprune.compile(SizeDependent().eval(), (x,), capture="fx")
    result = compile_and_check(SizeDependent(), x)  # auto is the default
    trace = result.report.artifacts["trace"]
    assert trace["capture"] == "export"
    assert trace["why"].startswith("fx tracing failed: ") and "x.shape" in trace["why"]
    assert tuple(result.module.a.weight.shape) == (4, 3, 3, 3)


def test_auto_uses_fx_where_it_traces() -> None:
    model, inputs = models_zoo.load("zoo:resnet20")
    result = graphprune.compile(model, tuple(inputs), capture="auto")
    assert result.report.artifacts["trace"] == {"capture": "fx", "why": "capture = 'auto'"}
    assert not any(str(n.target).startswith("aten.") for n in result.state.gm.graph.nodes)


def test_the_plan_selects_the_capture_and_checks_it() -> None:
    model, inputs = models_zoo.load("zoo:resnet20")
    plan = {"sparsity": 0.5, "passes": {"trace": {"capture": "export"}}}
    result = graphprune.compile(model, tuple(inputs), plan)
    assert result.report.artifacts["trace"]["capture"] == "export"
    with pytest.raises(PlanError, match=r"passes\.trace\.capture: expected one of 'fx', 'export', 'auto', got 'jit'"):
        graphprune.compile(model, tuple(inputs), {"passes": {"trace": {"capture": "jit"}}})
    with pytest.raises(InputError, match="capture: expected one of"):
        graphprune.compile(model, tuple(inputs), capture="onnx")

