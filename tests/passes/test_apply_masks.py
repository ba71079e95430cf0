"""apply-masks: installs masks from a criterion's weight scores that act in the forward, zero the masked
gradients, survive training, torch.export and a later channel removal, and tie to their weights when the
masked GraphModule is compiled again; the user's model is untouched."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import graphprune
import models_zoo
from graphprune.passes import run_pipeline
from graphprune.scoring import prunable_weights
from graphprune.scoring.masked import MaskedConv2d, MaskedLinear
from graphprune.state import CompileState, Options
from graphprune.testing import masked_equivalence_error, masked_model
from passes import (
    Allocate,
    AnalyzeChannels,
    ApplyMasks,
    Canonicalize,
    RemoveChannels,
    ScoreRandom,
    ScoreWeightMagnitude,
    Trace,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()


def masked_state(model: nn.Module, x: torch.Tensor, density: float = 0.3) -> CompileState:
    state = CompileState("m", model, (x,), Options(sparsity=0.5, score="magnitude"))
    return run_pipeline(state, [Trace(), Canonicalize(), AnalyzeChannels(), ScoreRandom(seed=1),
                                ApplyMasks(criterion="random", density=density)])


def test_apply_masks_installs_live_masks_without_touching_the_model():
    model, x = small_cnn(), torch.randn(2, 3, 6, 6)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = masked_state(model, x)
    assert {"masks"} <= state.facts and state.artifacts["apply-masks"]["density"] == pytest.approx(0.3, abs=1e-3)
    gm = state.gm
    assert isinstance(gm.get_submodule("0"), MaskedConv2d) and isinstance(gm.get_submodule("8"), MaskedLinear)
    for fqn, mask in state.masks.items():
        weight = gm.get_parameter(fqn)
        assert torch.equal(gm.get_buffer(f"{fqn}_mask").bool(), mask) and not weight[~mask].any()
    want = masked_model(model, {})
    with torch.no_grad():
        for fqn, mask in state.masks.items():
            want.get_parameter(fqn).mul_(mask)
        torch.testing.assert_close(gm(x), want(x))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert isinstance(model[0], nn.Conv2d) and not isinstance(model[0], MaskedConv2d)


def test_masked_gradients_are_zero_and_training_keeps_them_zero():
    model, x = small_cnn(), torch.randn(8, 3, 6, 6)
    state = masked_state(model, x)
    gm = state.gm.train()
    y = torch.randint(0, 4, (8,))
    F.cross_entropy(gm(x), y).backward()
    for fqn, mask in state.masks.items():
        grad = gm.get_parameter(fqn).grad
        assert not grad[~mask].any() and grad[mask].abs().sum() > 0
    opt = torch.optim.SGD(gm.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(gm(x), y).backward()
        opt.step()
    assert all(not gm.get_parameter(fqn)[~mask].any() for fqn, mask in state.masks.items())


def test_masks_survive_torch_export():
    model, x = small_cnn(), torch.randn(2, 3, 6, 6)
    gm = masked_state(model, x).gm.eval()
    exported = torch.export.export(gm, (x,))
    assert any(name.endswith("weight_mask") for name in exported.state_dict)
    module = exported.module()
    torch.testing.assert_close(module(x), gm(x))
    # the mask acts in the exported forward: filling the weights back in changes nothing
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight") and p.ndim > 1:
                p.copy_(torch.randn_like(p) + 10)
        filled = module(x)
        for fqn in prunable_weights(gm):
            gm.get_parameter(fqn).copy_(module.get_parameter(fqn) * gm.get_buffer(f"{fqn}_mask"))
    torch.testing.assert_close(filled, gm(x))


def test_channel_removal_after_masks_slices_them():
    model, (x,) = models_zoo.load("zoo:resnet20", input_size=8)
    state = masked_state(model, x, density=0.2)
    dense_masked = masked_model(model, {})
    with torch.no_grad():
        for fqn, mask in state.masks.items():
            dense_masked.get_parameter(fqn).mul_(mask)
    state = run_pipeline(state, [ScoreWeightMagnitude(), Allocate(), RemoveChannels()])
    gm = state.gm
    for fqn, mask in state.masks.items():
        assert mask.shape == gm.get_parameter(fqn).shape == gm.get_buffer(f"{fqn}_mask").shape
    assert any(mask.shape != model.get_parameter(fqn).shape for fqn, mask in state.masks.items())
    # the pruned masked model is the masked dense model with the removed channels zeroed
    assert all(fqn.replace("_mask", "") in state.kept for fqn in state.kept if fqn.endswith("weight_mask"))
    want = masked_model(dense_masked, {k: v for k, v in state.kept.items() if not k.endswith("_mask")})
    with torch.no_grad():
        torch.testing.assert_close(gm(x), want(x), rtol=1e-4, atol=1e-5)
    torch.export.export(gm, (x,))


def test_a_masked_graph_module_compiles_again():
    """A fresh analysis of the masked GraphModule ties each mask to its weight (the masked modules'
    channel rules), so a second compile slices the masks with the weights."""
    model, (x,) = models_zoo.load("zoo:resnet20", input_size=8)
    masked = masked_state(model, x, density=0.3).gm
    result = graphprune.compile(masked, (x,), sparsity=0.5)
    gm = result.module
    for fqn in prunable_weights(gm):
        assert gm.get_buffer(f"{fqn}_mask").shape == gm.get_parameter(fqn).shape
    assert result.report.params_after < result.report.params_before
    kept = {k: v for k, v in result.report.kept.items() if not k.endswith("_mask")}
    assert masked_equivalence_error(masked, gm, kept, (x,)) < 1e-4
