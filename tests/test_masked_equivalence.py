"""Masked equivalence on real models: the pruned model computes exactly what the dense model computes
with the removed channels zeroed. Zoo models at sparsity 0.5 (exact mode where LayerNorm statistics
would otherwise be touched), and the torchvision CNNs named in the acceptance list."""

from __future__ import annotations

import pytest
import torch

import graphprune
import models_zoo
from tests.conftest import sweep_mode
from tests.helpers import compile_and_check

ZOO = [e.name for e in models_zoo.catalog()]
NEEDS_EXACT = {"zoo:vit_tiny", "zoo:layerscale_net"}


@pytest.mark.parametrize("spec", ZOO)
@pytest.mark.parametrize("sparsity", [0.3, 0.7])
def test_zoo_masked_equivalence(spec, sparsity):
    model, inputs = models_zoo.load(spec)
    r = compile_and_check(model, inputs, sparsity=sparsity, exact=spec in NEEDS_EXACT)
    assert r.report.params_after < r.report.params_before
    assert r.report.macs_after < r.report.macs_before


TORCHVISION_CNNS = {  # name -> input size (small where the architecture allows)
    "resnet18": 64, "resnet50": 64, "resnext50_32x4d": 64, "wide_resnet50_2": 64, "densenet121": 64,
    "vgg11_bn": 64, "vgg16": 64, "alexnet": 96, "squeezenet1_0": 64, "squeezenet1_1": 64, "googlenet": 64,
    "inception_v3": 96, "mobilenet_v2": 64, "mobilenet_v3_small": 64, "mobilenet_v3_large": 64,
    "mnasnet0_5": 64, "mnasnet1_3": 64, "efficientnet_b0": 64, "efficientnet_v2_s": 64,
    "regnet_x_400mf": 64, "regnet_y_400mf": 64, "shufflenet_v2_x1_0": 64, "shufflenet_v2_x0_5": 64,
}
CI_SUBSET = ["resnet18", "resnext50_32x4d", "densenet121", "vgg11_bn", "alexnet", "squeezenet1_0",
             "googlenet", "inception_v3", "mobilenet_v2", "mobilenet_v3_small", "mnasnet0_5",
             "efficientnet_b0", "regnet_y_400mf", "shufflenet_v2_x1_0"]
SELECTED = list(TORCHVISION_CNNS) if sweep_mode() == "full" else CI_SUBSET


@pytest.mark.slow
@pytest.mark.parametrize("name", SELECTED)
def test_torchvision_cnn_masked_equivalence(name):
    model, inputs = models_zoo.load(f"torchvision:{name}", input_size=TORCHVISION_CNNS[name])
    r = compile_and_check(model, inputs, sparsity=0.5)
    assert r.report.inexact == []
    assert r.report.macs_reduction > 2.0


def test_batch_size_does_not_matter():
    model, inputs = models_zoo.load("zoo:resnet20")
    r = compile_and_check(model, inputs, sparsity=0.5)
    x = torch.randn(5, *inputs[0].shape[1:])
    with torch.no_grad():
        assert r.module(x).shape == (5, 10)


@pytest.mark.parametrize("spec,size", [("torchvision:inception_v3", 96), ("torchvision:resnet18", 64)])
def test_check_detects_wrong_indices(spec, size):
    """The equivalence check itself must be able to fail: shifting one layer's kept indices breaks it."""
    import copy

    from graphprune.testing import masked_equivalence_error
    from tests.helpers import calibrate, make_nontrivial

    model, inputs = models_zoo.load(spec, input_size=size)
    model = calibrate(make_nontrivial(model), inputs)
    r = compile_and_check(model, inputs, sparsity=0.5)
    wrong = copy.deepcopy(r.report.kept)
    fqn = next(k for k in wrong if k.endswith("weight") and 0 in wrong[k])
    wrong[fqn][0] = [(i + 1) % (max(wrong[fqn][0]) + 2) for i in wrong[fqn][0]]
    assert masked_equivalence_error(model, r.module, wrong, inputs) > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("name", ["swin_t", "vit_b_16"])
def test_torchvision_transformers_exact_mode(name):
    """Swin's opaque window attention is inlined with static sizes and MHA is decomposed: both prune
    their attention head dims exactly (LayerNorm-coupled widths stay in exact mode)."""
    model, inputs = models_zoo.load(f"torchvision:{name}")
    r = compile_and_check(model, inputs, sparsity=0.5, exact=True)
    assert r.report.unknown_ops == []
    loose = graphprune.compile(model, inputs, sparsity=0.5)
    assert loose.report.macs_reduction > 3.0
