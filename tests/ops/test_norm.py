"""The normalisation family (``graphprune/ops/norm.py``) and what its declarations tell each consumer.

Purify, fuse, the path copies, recalibration, ADMM, slimming and liveness each used to keep an isinstance
tuple or a name list of their own. ``OLD`` is those tuples: the declarations must give every consumer
exactly the layers it handled. The sets differ between consumers (purify zeroes batch and group norms,
the path copies also rescale layer and instance norms); the tests keep the differences as they were.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

import graphprune
from graphprune.liveness.layers import norm_view
from graphprune.liveness.ops import Kind, kind_of
from graphprune.ops.registry import Trait, formula_for, has_trait
from graphprune.scoring.copies import GateStore, NormScale, linear_copy, norm_scale
from graphprune.shapes import Call, spec
from graphprune.testing import masked_equivalence_error, masked_model, relative_error
from graphprune.trace import trace
from graphprune.values import propagate, propagate_counting
from tests.helpers import compile_and_check

timm_norm_act = pytest.importorskip("timm.layers.norm_act")

BN, IN = nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm
OLD = {  # consumer -> the isinstance tuple it kept before the op table
    "purify zeroes it": (BN, nn.GroupNorm),
    "path copies rescale it": (BN, nn.GroupNorm, nn.LayerNorm, IN),
    "recalibrated, broadcast, slimming gamma": (BN,),
    "fuse folds it": (BN,),
    "statistics per group": (nn.GroupNorm,),
    "statistics per instance": (IN,),
}
ASKS = {
    "purify zeroes it": lambda m: has_trait(m, Trait.PER_CHANNEL_NORM),
    "path copies rescale it": lambda m: norm_scale(m) is not None,
    "recalibrated, broadcast, slimming gamma": lambda m: has_trait(m, Trait.RUNNING_STATS),
    "fuse folds it": lambda m: has_trait(m, Trait.FOLDABLE_INTO_CONV),
    "statistics per group": lambda m: has_trait(m, Trait.GROUP_STATS),
    "statistics per instance": lambda m: has_trait(m, Trait.INSTANCE_STATS),
}
LAYERS = [nn.BatchNorm1d(4), nn.BatchNorm2d(4), nn.BatchNorm3d(4, affine=False), nn.SyncBatchNorm(4),
          nn.InstanceNorm1d(4, affine=True), nn.InstanceNorm2d(4), nn.GroupNorm(2, 4), nn.GroupNorm(1, 4),
          nn.LayerNorm(4), nn.LayerNorm(4, elementwise_affine=False), nn.LocalResponseNorm(2),
          FrozenBatchNorm2d(4), timm_norm_act.BatchNormAct2d(4), nn.Conv2d(4, 4, 1), nn.Linear(4, 4)]


@pytest.mark.parametrize("consumer", list(OLD))
@pytest.mark.parametrize("layer", LAYERS, ids=lambda m: type(m).__name__)
def test_each_consumer_handles_the_layers_it_handled(consumer: str, layer: nn.Module) -> None:
    assert ASKS[consumer](layer) == isinstance(layer, OLD[consumer])


def test_the_path_scale_is_the_affine_over_the_running_deviation() -> None:
    bn = nn.BatchNorm2d(3).eval()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, -2.0, 0.5]))
        bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
    scale, dim = norm_scale(bn)
    assert dim == 1 and torch.allclose(scale, bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps))
    ln = nn.LayerNorm((2, 3))
    scale, dim = norm_scale(ln)
    assert dim is None and scale.shape == (2, 3)
    gn_scale, gn_dim = norm_scale(nn.GroupNorm(2, 4, affine=False))
    assert gn_dim == 1 and torch.equal(gn_scale, torch.ones(4, dtype=torch.float64))


class Functional(nn.Module):
    """F.batch_norm on the model's own buffers, and F.instance_norm."""

    def __init__(self, instance: bool) -> None:
        super().__init__()
        self.conv, self.instance = nn.Conv2d(3, 4, 1), instance
        self.register_buffer("mean", torch.zeros(4))
        self.register_buffer("var", torch.ones(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return F.instance_norm(h) if self.instance else F.batch_norm(h, self.mean, self.var)


EXACT, OPAQUE, STATISTICS = Kind("norm", "norm"), Kind("none", "per-channel"), Kind("norm", "all")
KINDS = [  # (the norm, its liveness kind before the op table)
    (nn.BatchNorm2d(4), EXACT), (nn.SyncBatchNorm(4), OPAQUE), (nn.InstanceNorm2d(4, affine=True), EXACT),
    (nn.GroupNorm(2, 4), EXACT), (nn.GroupNorm(1, 4), STATISTICS), (FrozenBatchNorm2d(4), EXACT),
    (timm_norm_act.BatchNormAct2d(4), EXACT), (timm_norm_act.BatchNormAct2d(4, act_layer=nn.Sigmoid), OPAQUE),
    (nn.LayerNorm([4, 5, 5]), STATISTICS), (Functional(instance=False), EXACT), (Functional(instance=True), OPAQUE),
]


@pytest.mark.parametrize(("norm", "kind"), KINDS, ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else None)
def test_liveness_kind_of_each_norm(norm: nn.Module, kind: Kind) -> None:
    model = norm if isinstance(norm, Functional) else nn.Sequential(nn.Conv2d(3, 4, 1), norm)
    gm = trace(model.eval(), extra_leaves=[timm_norm_act.BatchNormAct2d, FrozenBatchNorm2d])  # as leaves
    node = list(gm.graph.nodes)[-2]
    assert kind_of(node, gm) == kind


class Unbatched(nn.Module):
    """An instance norm reading one sample ``(C, H, W)``: its channels are dim 0."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.norm, self.b = nn.Conv2d(3, 8, 3), nn.InstanceNorm2d(8, affine=True), nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.norm(torch.relu(self.a(x))[0]).unsqueeze(0))


def test_an_unbatched_instance_norm_prunes_along_dim_0() -> None:
    model, x = Unbatched().eval(), torch.randn(1, 3, 6, 6)
    with torch.no_grad():
        model.norm.weight.uniform_(0.5, 1.5)
        model.norm.bias.normal_()
    result = compile_and_check(model, x, sparsity=0.5)
    assert result.module.norm.weight.shape == (4,) and result.report.macs_after < result.report.macs_before
    gm = trace(model)
    node = next(n for n in gm.graph.nodes if n.target == "norm")
    assert norm_view(node, gm, propagate(gm, (x,))).dim == 0
    assert graphprune.compile(model, (x,), sparsity=0.5).report.inexact == []


# ---- nn.RMSNorm: full support declared in one place (graphprune/ops/norm.py)


class RMSNormed(nn.Module):
    """A token MLP whose hidden width passes an RMSNorm over the channels (statistics span them), and an
    image branch whose RMSNorm normalises each channel over its own pixels (exact under removal)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.norm, self.fc2 = nn.Linear(8, 32), nn.RMSNorm(32), nn.Linear(32, 8)
        self.conv, self.pixels, self.head = nn.Conv2d(3, 16, 1), nn.RMSNorm([4, 4]), nn.Conv2d(16, 4, 1)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.pixels.weight.uniform_(0.5, 1.5)

    def forward(self, tokens: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fc2(self.norm(torch.relu(self.fc1(tokens)))), self.head(self.pixels(torch.relu(self.conv(image))))


def _rms_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(2, 5, 8), torch.randn(2, 3, 4, 4)


def test_rms_norm_over_channels_is_pruned_and_reported_inexact() -> None:
    model, inputs = RMSNormed().eval(), _rms_inputs()
    loose = graphprune.compile(model, inputs, sparsity=0.5, statistics="renormalize")
    assert loose.module.norm.weight.shape == (16,) and loose.module.norm.normalized_shape == (16,)
    assert loose.module.pixels.weight.shape == (4, 4) and loose.module.conv.weight.shape[0] == 8
    assert loose.report.macs_after < loose.report.macs_before
    (entry,) = loose.report.inexact
    assert entry["reason"] == "LayerNorm/RMSNorm statistics span the channels"
    assert list(entry["removed_channels"].values()) == [16]
    with torch.no_grad():  # inexact means it: the tokens' statistics changed, the image branch did not
        want, got = masked_model(model, loose.report.kept)(*inputs), loose.module(*inputs)
    assert relative_error(got[0], want[0]) > 1e-2 and relative_error(got[1], want[1]) < 1e-5


def test_rms_norm_over_channels_keeps_the_original_width_by_default() -> None:
    """statistics = "exact": the same removal, over 32 channels of which 16 are zero: masked-equivalent."""
    model, inputs = RMSNormed().eval(), _rms_inputs()
    result = graphprune.compile(model, inputs, sparsity=0.5)
    assert result.module.norm.weight.shape == (16,) and result.module.norm.normalized_shape == (16,)
    assert result.report.inexact == [] and result.report.artifacts["statistics"]["full_width"] == ["norm"]
    assert masked_equivalence_error(model, result.module, result.report.kept, inputs) < 1e-5


def test_rms_norm_exact_mode_freezes_its_channels_and_stays_equivalent() -> None:
    model, inputs = RMSNormed().eval(), _rms_inputs()
    exact = graphprune.compile(model, inputs, sparsity=0.5, exact=True)
    assert exact.report.inexact == [] and exact.module.norm.weight.shape == (32,)
    assert exact.module.conv.weight.shape[0] == 8 and exact.report.macs_after < exact.report.macs_before
    assert masked_equivalence_error(model, exact.module, exact.report.kept, inputs) < 1e-5


@pytest.mark.parametrize(("norm", "x"), [
    (nn.RMSNorm(6), torch.randn(2, 3, 6)), (nn.RMSNorm((3, 6)), torch.randn(2, 3, 6)),
    (nn.RMSNorm(6, elementwise_affine=False), torch.randn(4, 6)), (nn.RMSNorm(6, eps=1e-3), torch.randn(6)),
    (nn.RMSNorm(6), torch.randn(2, 6, 3)),  # wrong trailing size: torch raises, the formula declines
], ids=["tokens", "two-dims", "no-affine", "unbatched", "wrong-shape"])
def test_rms_norm_shape_formula_matches_torch(norm: nn.Module, x: torch.Tensor) -> None:
    try:
        want = norm(x)
    except RuntimeError:
        want = None
    got = formula_for(nn.RMSNorm)(Call((spec(x),), {}, norm))
    assert (got is None) if want is None else (got.shape == want.shape and got.dtype == want.dtype)


def test_rms_norm_shapes_come_from_the_formula(monkeypatch: pytest.MonkeyPatch) -> None:
    """No fake-tensor run of the RMSNorm nodes: with their forward broken, propagation still answers,
    with the shapes and MACs of the fake-tensor run."""
    model, inputs = RMSNormed().eval(), _rms_inputs()
    gm = trace(model, num_inputs=2)
    reference = propagate_counting(gm, inputs, formulas=False)

    def broken(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("RMSNorm ran: its shape did not come from the formula")

    monkeypatch.setattr(nn.RMSNorm, "forward", broken)
    assert propagate_counting(gm, inputs) == reference


def test_rms_norm_liveness_and_path_copies() -> None:
    """Statistics read every channel; a channel is zero where its affine is; path scoring keeps only its
    affine scale, as LayerNorm's."""
    model = RMSNormed().eval()
    gm = trace(model, num_inputs=2)
    assert kind_of(next(n for n in gm.graph.nodes if n.target == "norm"), gm) == STATISTICS
    scale, dim = norm_scale(model.norm)
    assert dim is None and torch.equal(scale, model.norm.weight.detach())
    copy = linear_copy(model, GateStore())
    assert isinstance(copy.norm, NormScale) and isinstance(copy.pixels, NormScale)
    assert torch.equal(copy.pixels.scale, model.pixels.weight.detach().double())
