"""fuse: BatchNorm folding into the layer before or after it, dropout/identity removal, and the
conditions that forbid a fold (zero padding after a BatchNorm, shared layers, other users).

Exactness is checked in float64, where a fold is exact up to round-off (~1e-13). In float32 the folded
weights are rounded, and a deep randomly initialised network moves by up to ~1e-4 (relative) when its
weights move by one ulp (measured: regnet_x_400mf 5e-5, resnext50 1e-4), so float32 parity is held to
1e-5 or, where the model itself is that sensitive, 4x its measured one-ulp sensitivity. The input graph
is never changed.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import graphprune
import models_zoo
from graphprune.passes import run_pipeline
from graphprune.state import CompileState
from graphprune.trace import trace
from passes import Trace
from passes.fuse import Fuse, fuse
from tests.conftest import sweep_mode
from tests.helpers import calibrate, make_nontrivial, randomize_norms

pytestmark = pytest.mark.usefixtures("single_thread")


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max())


def _bn_nodes(gm: torch.fx.GraphModule) -> int:
    return sum(1 for n in gm.graph.nodes if n.target is F.batch_norm or (
        n.op == "call_module" and isinstance(gm.get_submodule(n.target), nn.modules.batchnorm._BatchNorm)))


def _ulp_sensitivity(gm: torch.fx.GraphModule, x: torch.Tensor, out: torch.Tensor) -> float:
    """Relative output change when every weight moves by about one float32 ulp."""
    g = torch.Generator().manual_seed(0)
    noisy = copy.deepcopy(gm)
    with torch.no_grad():
        for p in noisy.parameters():
            p.mul_(1 + 6e-8 * torch.randn(p.shape, generator=g))
        return _rel(out, noisy(x))


def _check(gm: torch.fx.GraphModule, x: torch.Tensor) -> dict:
    """Fuse a float64 copy (exactness) and the float32 graph (rounding); return the float32 record."""
    gm64 = copy.deepcopy(gm).double()
    fused64, _ = fuse(gm64, (x.double(),))
    with torch.no_grad():
        assert _rel(gm64(x.double()), fused64(x.double())) <= 1e-9
    before = {k: v.clone() for k, v in gm.state_dict().items()}
    fused, record = fuse(gm, (x,))
    with torch.no_grad():
        dense, out = gm(x), fused(x)
    assert float(dense.std()) > 0
    assert _rel(dense, out) <= max(1e-5, 4 * _ulp_sensitivity(gm, x, dense))
    assert _bn_nodes(fused) == len(record["bn_left"])
    assert _bn_nodes(gm) == len(record["bn_left"]) + record["bn_into_preceding"] + record["bn_into_following"]
    assert all(torch.equal(before[k], v) for k, v in gm.state_dict().items()), "input graph changed"
    return record


# ---------------------------------------------------------------------------------- hand-built graphs


class _Following(nn.Module):
    """BN before convs/linears: padding 0 folds, zero padding does not, reflect padding does."""

    def __init__(self) -> None:
        super().__init__()
        self.bn0, self.conv0 = nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, groups=2)
        self.bn1, self.conv1 = nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, padding=1)
        self.bn2, self.conv2 = nn.BatchNorm2d(8), nn.Conv2d(8, 4, 3, padding=1, padding_mode="reflect", bias=False)
        self.bn3, self.fc = nn.BatchNorm1d(4), nn.Linear(4, 3)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv0(self.bn0(x)))
        x = torch.relu(self.conv1(self.bn1(x)))
        x = self.conv2(self.bn2(x)).mean((2, 3))
        return self.fc(F.dropout(self.drop(self.bn3(x)), 0.1, training=False))


class _Preceding(nn.Module):
    """Transposed grouped conv -> BN, linear -> BN1d, functional batch_norm, a shared conv and a conv
    whose output has a second user (neither may change), identities."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.bn_up = nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2), nn.BatchNorm2d(6)
        self.shared, self.bn_s = nn.Conv2d(6, 6, 1), nn.BatchNorm2d(6)
        self.conv, self.bn_c = nn.Conv2d(6, 6, 1), nn.BatchNorm2d(6)
        self.register_buffer("mean", torch.randn(6) * 0.1)
        self.register_buffer("var", torch.rand(6) + 0.5)
        self.gamma, self.beta = nn.Parameter(torch.rand(6) + 0.5), nn.Parameter(torch.randn(6))
        self.fconv = nn.Conv2d(6, 6, 3, padding=1)
        self.fc, self.bn_fc = nn.Linear(6, 5), nn.BatchNorm1d(5)
        self.ident = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn_up(self.up(x))
        x = torch.relu(self.bn_s(self.shared(self.shared(x))))  # shared: called twice, must stay
        c = self.conv(x)
        x = self.bn_c(c) + c  # c has two users: bn_c must stay
        x = F.batch_norm(self.fconv(x), self.mean, self.var, self.gamma, self.beta, False, 0.1, 1e-3)
        return self.ident(self.bn_fc(self.fc(x.mean((2, 3)))))


def test_fold_into_following_layer_where_padding_allows() -> None:
    model = randomize_norms(_Following()).eval()
    record = _check(trace(model), torch.randn(2, 8, 12, 12))
    assert record["bn_into_following"] == 3 and record["bn_left"] == ["bn1"]
    assert record["dropout_removed"] == 2 and record["bn_into_preceding"] == 0


def test_fold_into_preceding_layer_only_when_private() -> None:
    model = randomize_norms(_Preceding()).eval()
    gm = trace(model)
    record = _check(gm, torch.randn(2, 4, 5, 5))
    assert record["bn_into_preceding"] == 3  # transposed grouped conv, functional batch_norm, linear
    assert sorted(record["bn_left"]) == ["bn_c", "bn_s"] and record["identity_removed"] == 1


def test_fuse_pass_records_artifact_and_leaves_user_model_alone() -> None:
    model = calibrate(make_nontrivial(models_zoo.load("zoo:resnet20")[0]), (torch.randn(1, 3, 32, 32),))
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 32, 32)
    state = run_pipeline(CompileState("r20", model.train(), (x,)), [Trace(), Fuse()])
    assert all(m.training for m in model.modules()), "fuse switched the user's modules to eval mode"
    assert not any(m.training for m in state.gm.modules())
    assert "fused" in state.facts and state.artifacts["fuse"]["bn_into_preceding"] == 21
    with torch.no_grad():
        assert _rel(model.eval()(x), state.gm(x)) <= 1e-5
    assert all(torch.equal(reference[k], v) for k, v in model.state_dict().items())


# ---------------------------------------------------------------------------------------- model sweeps


@pytest.mark.parametrize("name", [e.name for e in models_zoo.catalog()])
def test_fuse_zoo_dense_and_pruned(name: str) -> None:
    model, (x,) = models_zoo.load(name)
    model = calibrate(make_nontrivial(model), (x,))
    dense = _check(trace(model), x)
    pruned = _check(graphprune.compile(model, (x,), sparsity=0.5).module, x)
    assert dense == pruned  # pruning changes widths, never which layers fold
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert (dense["bn_into_preceding"] > 0) == has_bn


TORCHVISION = ["resnet18", "mobilenet_v3_small", "densenet121", "efficientnet_b0", "shufflenet_v2_x0_5",
               "googlenet", "regnet_x_400mf", "mnasnet0_5", "vgg11_bn", "resnext50_32x4d"]
CI_TORCHVISION = ["resnet18", "mobilenet_v3_small", "regnet_x_400mf"]


@pytest.mark.slow
@pytest.mark.parametrize("name", TORCHVISION if sweep_mode() == "full" else CI_TORCHVISION)
def test_fuse_torchvision_dense_and_pruned(name: str) -> None:
    model, (x,) = models_zoo.load(f"torchvision:{name}", input_size=64)
    model = calibrate(make_nontrivial(model), (x,))
    dense = _check(trace(model), x)
    pruned = _check(graphprune.compile(model, (x,), sparsity=0.5).module, x)
    assert dense["bn_into_preceding"] > 0 and dense == pruned
