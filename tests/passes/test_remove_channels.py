"""remove-channels: alone on the tiny graph of ``conftest.py`` it shrinks every member of the group and
keeps the masked function; over two rounds ``kept`` stays in the original numbering and the twice-pruned
model computes the original model with every removed channel zeroed (masked equivalence)."""

from __future__ import annotations

import pytest
import torch

import graphprune
import models_zoo
from graphprune.passes import run_pass, run_pipeline
from graphprune.testing import masked_equivalence_error
from passes import Allocate, AnalyzeChannels, PropagateShapes, RemoveChannels, ScoreMagnitude
from passes.remove_channels import compose_kept
from tests.helpers import calibrate, make_nontrivial
from tests.passes.tiny_graph import X

pytestmark = pytest.mark.usefixtures("single_thread")


def test_compose_kept_maps_through_the_previous_round():
    old = {"a.weight": {0: [1, 3, 4, 7]}, "b.weight": {1: [0, 2]}}
    new = {"a.weight": {0: [0, 2], 1: [1]}}
    assert compose_kept(old, new) == {"a.weight": {0: [1, 4], 1: [1]}, "b.weight": {1: [0, 2]}}


@pytest.mark.parametrize("name", ["resnet20", "shufflenet_tiny"])
def test_two_rounds_keep_masked_equivalence(name):
    model, inputs = models_zoo.load(f"zoo:{name}")
    model = calibrate(make_nontrivial(model.eval()), inputs)
    first = graphprune.compile(model, inputs, sparsity=0.3)
    second = run_pipeline(first.state, [PropagateShapes(), AnalyzeChannels(), ScoreMagnitude(), Allocate(),
                                        RemoveChannels()])
    kept = second.kept
    for fqn, dims in first.state.kept.items():  # the second round only narrows the first's choice
        for dim, index in dims.items():
            assert set(kept[fqn][dim]) <= set(index)
    narrower = [f for f, dims in kept.items() for d, ix in dims.items()
                if len(ix) < len(first.state.kept.get(f, {}).get(d, range(10**9)))]
    assert narrower, "the second round removed nothing: test is vacuous"
    for fqn, dims in kept.items():  # indices are original ones and match the pruned tensors' sizes
        t = dict(model.named_parameters()).get(fqn)
        if t is not None:
            pruned = dict(second.gm.named_parameters())[fqn]
            for dim, index in dims.items():
                assert max(index) < t.shape[dim] and len(index) == pruned.shape[dim]
    assert masked_equivalence_error(model, second.gm, kept, inputs) <= 1e-5
    assert second.macs["pruned"] < first.state.macs["pruned"]
    with torch.no_grad():
        assert second.gm(*inputs).shape == model(*inputs).shape


def test_remove_channels_shrinks_and_keeps_the_masked_function(allocated, model) -> None:
    state = run_pass(allocated, RemoveChannels())
    assert "removed" in state.facts and "groups" not in state.facts  # invalidated
    assert state.gm.conv1.out_channels == 4 and state.gm.conv2.in_channels == 4 and state.gm.bn.num_features == 4
    assert masked_equivalence_error(model, state.gm, state.kept, (X,)) < 1e-6
