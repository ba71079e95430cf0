"""Budgets and rule precedence: MACs/params targets met within 2 % (measured on the pruned model),
the cost model agreeing with the measurement, and the most specific rule governing each group."""

from __future__ import annotations

import math

import pytest
import torch

import graphprune
import models_zoo
from graphprune.testing import masked_equivalence_error
from tests.helpers import calibrate

pytestmark = pytest.mark.usefixtures("single_thread")

FLOOR_MODELS = ["resnet50", "mobilenet_v3_large", "densenet121", "efficientnet_b0", "regnet_x_1_6gf", "vit_b_16"]


def _budget_plan(metric: str, ratio: float, scope: str = "global") -> dict:
    return {"prune": [{"select": "*", "budget": {metric: ratio}}], "allocate": {"scope": scope, "max_per_group": 0.9}}


@pytest.mark.parametrize("name", FLOOR_MODELS)
def test_mac_budgets_are_met_within_two_percent(name: str) -> None:
    model, inputs = models_zoo.load(f"torchvision:{name}", input_size=224 if name.startswith("vit") else 96)
    for ratio in (0.3, 0.5, 0.7):
        report = graphprune.compile(model, inputs, plan=_budget_plan("macs", ratio)).report
        achieved = report.macs_after / report.macs_before
        assert abs(achieved - ratio) <= 0.02 * ratio, (name, ratio, achieved)
        assert report.budget["achieved"] == pytest.approx(achieved, abs=1e-4)
        assert report.budget["estimated"] == pytest.approx(achieved, rel=1e-3)  # the cost model is exact here


@pytest.mark.parametrize("spec", ["zoo:resnet20", "zoo:mobilenet_tiny", "zoo:densenet_tiny", "zoo:shufflenet_tiny"])
def test_param_budget_and_masked_equivalence(spec: str) -> None:
    model, inputs = models_zoo.load(spec)
    model = calibrate(model.eval(), inputs)
    result = graphprune.compile(model, inputs, plan=_budget_plan("params", 0.5))
    achieved = result.report.params_after / result.report.params_before
    assert achieved <= 0.5 * 1.02 and result.report.budget["estimated"] == pytest.approx(achieved, abs=1e-4)
    assert masked_equivalence_error(model, result.module, result.report.kept, inputs) < 1e-4


def test_local_scope_budget_prunes_every_group_by_one_ratio() -> None:
    model, inputs = models_zoo.load("torchvision:resnet18", input_size=64)
    result = graphprune.compile(model, inputs, plan=_budget_plan("macs", 0.5, scope="local"))
    r = result.report
    assert abs(r.macs_after / r.macs_before - 0.5) <= 0.01
    ratios = {layer.after / layer.before for layer in r.layers if layer.kind == "Conv2d" and layer.before >= 64
              and layer.after < layer.before}
    assert max(ratios) - min(ratios) < 0.05  # one shared ratio (up to floor rounding)


def _width(result, name: str) -> int:
    return result.module.get_submodule(name).out_channels


def test_most_specific_rule_wins_and_others_take_the_rest() -> None:
    model, inputs = models_zoo.load("torchvision:resnet18", input_size=64)
    plan = {"prune": [{"select": "*", "sparsity": 0.25},
                      {"select": "layer3.*", "sparsity": 0.75}]}
    result = graphprune.compile(model, inputs, plan=plan)
    assert _width(result, "layer3.0.conv1") == 256 - 192
    assert _width(result, "layer3.1.conv2") == 256 - 192  # the residual group is owned by layer3 modules
    assert _width(result, "layer2.0.conv1") == 128 - 32
    assert _width(result, "layer4.1.conv1") == 512 - 128
    record = result.report.artifacts["allocate"]
    assert record["prune[1]"]["removed"] == sum(g for g in [192] * 3)  # conv1 of each block + residual group


def test_exact_name_beats_a_pattern_and_type_selectors_work() -> None:
    model, inputs = models_zoo.load("torchvision:resnet18", input_size=64)
    plan = {"prune": [{"select": "type:Conv2d", "sparsity": 0.5},
                      {"select": "layer1.0.conv1", "sparsity": 0.25}]}
    result = graphprune.compile(model, inputs, plan=plan)
    assert _width(result, "layer1.0.conv1") == 48 and _width(result, "layer1.1.conv1") == 32


def test_global_sparsity_removes_that_fraction_of_all_selected_channels() -> None:
    model, inputs = models_zoo.load("zoo:resnet20")
    result = graphprune.compile(model, inputs, plan={"prune": [{"select": "*", "sparsity": 0.4}],
                                                     "allocate": {"scope": "global", "max_per_group": 0.8}})
    rec = result.report.artifacts["allocate"]["prune[0]"]
    assert rec["removed"] == math.floor(0.4 * rec["channels"])
    for layer in result.report.layers:
        if layer.kind == "Conv2d" and layer.after < layer.before:
            assert layer.after >= math.ceil(0.2 * layer.before) - 1  # the per-group cap holds


def test_budget_round_to_keeps_multiples() -> None:
    model, inputs = models_zoo.load("torchvision:mobilenet_v2", input_size=64)
    plan = {**_budget_plan("macs", 0.5), "allocate": {"scope": "global", "round_to": 8, "max_per_group": 0.9}}
    result = graphprune.compile(model, inputs, plan=plan)
    for layer in result.report.layers:
        if layer.after < layer.before:
            assert layer.after % 8 == 0, layer
    r = result.report
    assert abs(r.macs_after / r.macs_before - 0.5) <= 0.02 * 0.5
    x = torch.randn(1, 3, 64, 64)
    assert result.module(x).shape == model.eval()(x).shape
