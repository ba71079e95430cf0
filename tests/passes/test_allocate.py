"""allocate (and ``graphprune.allocation``): budgets and rule precedence. MACs/params targets met
within 2 % (measured on the pruned model), the cost model agreeing with the measurement, and the most
specific rule governing each group; alone on the tiny graph of ``conftest.py``, the best half of a
group is kept and the pass refuses to run without scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import graphprune
import models_zoo
from graphprune.allocation import Candidate, Limits
from graphprune.channels.groups import GroupMember, PruningGroup
from graphprune.passes import PipelineError, run_pass
from graphprune.plan import load_plan
from graphprune.testing import masked_equivalence_error
from passes import Allocate
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


def test_concatenation_group_prunes_every_producer_by_the_ratio() -> None:
    """A dense block is one group; each layer's new channels (its producer's share) lose half, so late
    layers are not starved by channels that feed many consumers and so sum many norms."""
    model, inputs = models_zoo.load("torchvision:densenet121", input_size=64)
    model = calibrate(model.eval(), inputs)
    result = graphprune.compile(model, inputs, sparsity=0.5)
    block = max(result.state.channels.groups, key=lambda g: g.size)
    assert [len(p) for p in block.producers] == [256] + [32] * 24  # denseblock3: input + 24 layers
    growth = {layer.name: layer.after for layer in result.report.layers if layer.name.endswith(".conv2")}
    assert growth and set(growth.values()) == {16}, growth
    assert result.report.macs_before / result.report.macs_after > 3.8
    assert masked_equivalence_error(model, result.module, result.report.kept, inputs) < 1e-4


def _concat_group() -> PruningGroup:
    """Producer a (4 channels) and producer b (8) concatenated into one consumer; b's channels score
    higher everywhere, as channels that feed more layers do."""
    channels = np.arange(12)
    members = [GroupMember("a.weight", 0, channels[:4]), GroupMember("b.weight", 0, channels[4:]),
               GroupMember("consumer.weight", 1, channels)]
    return PruningGroup(index=0, labels=channels, members=members, prunable=np.ones(12, bool),
                        inexact=np.zeros(12, bool))


def test_ratio_applies_per_producer_and_round_to_group_wide() -> None:
    group = _concat_group()
    score = np.concatenate([np.arange(1.0, 5.0), np.arange(10.0, 18.0)])
    candidate = Candidate.of(group, score, exact=False)
    assert [p.tolist() for p in group.producers] == [[0, 1, 2, 3], list(range(4, 12))]
    keep = candidate.keep_at_ratio(0.5, Limits())
    assert np.flatnonzero(keep).tolist() == [2, 3, 8, 9, 10, 11]  # the best half of each producer
    keep = candidate.keep_at_ratio(0.5, Limits(round_to=4))  # group-wide: 8 of 12, b's high scores win,
    assert np.flatnonzero(keep).tolist() == [3, *range(4, 12)]  # and a keeps the one channel every member is owed


def test_allocate_keeps_the_best_half(scored) -> None:
    state = run_pass(scored, Allocate())
    group = next(g for g in scored.channels.groups if g.num_prunable)
    kept = state.keep[group.labels]
    score = scored.scores["l2"][group.index]
    assert kept.sum() == 4
    assert score[kept].min() >= score[~kept].max()


def test_allocate_refuses_without_scores(grouped) -> None:
    with pytest.raises(PipelineError, match="requires"):
        run_pass(grouped, Allocate(plan=load_plan()))
