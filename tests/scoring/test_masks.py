"""Masks: global/local thresholds and the schedule, and a user's module holding masked twins compiles
exactly (the apply-masks pass that installs them: tests/passes/test_apply_masks.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import graphprune
from graphprune.scoring import exponential_schedule, global_masks, local_masks
from graphprune.testing import masked_equivalence_error

pytestmark = pytest.mark.usefixtures("single_thread")


def test_global_masks_keep_exactly_the_top_scores():
    scores = {"a": torch.tensor([[0.1, 5.0], [3.0, float("nan")]]), "b": torch.tensor([2.0, 0.2, 4.0, 1.0])}
    masks = global_masks(scores, 0.5)
    assert masks["a"].tolist() == [[False, True], [True, False]] and masks["b"].tolist() == [True, False, True, False]
    tied = global_masks({"a": torch.zeros(10)}, 0.3)
    assert int(tied["a"].sum()) == 3
    local = local_masks({"a": torch.arange(10.0), "b": -torch.arange(4.0)}, 0.5)
    assert local["a"].tolist() == [False] * 5 + [True] * 5 and local["b"].tolist() == [True, True, False, False]
    assert int(global_masks({"a": torch.rand(7)}, 1e-6)["a"].sum()) == 1  # never empty


def test_exponential_schedule_reaches_the_target_geometrically():
    steps = exponential_schedule(0.01, 4)
    np.testing.assert_allclose(steps, [0.01 ** 0.25, 0.01 ** 0.5, 0.01 ** 0.75, 0.01])
    assert exponential_schedule(0.2, 1) == [0.2]


def test_plain_module_holding_masked_layers_compiles_exactly() -> None:
    """A user's nn.Module that contains masked twins (not a GraphModule) traces them as leaves."""
    from graphprune.scoring.masked import masked_module

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 4, 1)).eval()
    mask = torch.rand_like(model[2].weight) > 0.5
    model[2] = masked_module(model[2], mask)
    x = torch.randn(2, 3, 6, 6)
    result = graphprune.compile(model, x, sparsity=0.5)
    assert type(result.module.get_submodule("2")).__name__ == "MaskedConv2d"
    assert result.module.get_submodule("2").out_channels == 4
    assert masked_equivalence_error(model, result.module, result.report.kept, (x,)) < 1e-5
