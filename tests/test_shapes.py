"""Shape formulas agree with torch: same result shapes, dtypes and MACs as running the op, and they
decline (None) wherever torch raises, so error messages stay torch's own. Here: the linear and norm
formulas and the shape machinery (propagation with formulas equals the fake-tensor run); the other
families' formulas are tested in tests/ops/test_<family>.py."""

from __future__ import annotations

import operator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import models_zoo
from graphprune.ops.registry import formula_for
from graphprune.shapes import Call, spec
from graphprune.trace import trace
from graphprune.values import propagate_counting
from tests.ops.checks import check_function, check_layer, t

pytestmark = pytest.mark.usefixtures("single_thread")


LAYERS = [  # linear and norm layers; the other families' layers are tested in tests/ops/test_<family>.py
    (nn.Linear(6, 3), t(6)), (nn.Linear(6, 3), t(2, 5, 6)), (nn.Linear(6, 3, bias=False), t(4, 6)),
    (nn.Linear(6, 3), t(4, 5)),
    (nn.BatchNorm2d(4).eval(), t(2, 4, 3, 3)), (nn.BatchNorm2d(4).eval(), t(2, 5, 3, 3)),
    (nn.BatchNorm1d(4).eval(), t(2, 4)), (nn.BatchNorm1d(4).eval(), t(2, 4, 7)),
    (nn.LayerNorm(6), t(2, 3, 6)), (nn.LayerNorm((3, 6)), t(2, 3, 6)), (nn.LayerNorm(6), t(2, 6, 3)),
    (nn.GroupNorm(2, 4), t(2, 4, 3)), (nn.GroupNorm(2, 4), t(2, 6, 3)),
]


def _layer_id(value: Any) -> str | None:
    return type(value).__name__ if isinstance(value, nn.Module) else None


@pytest.mark.parametrize("module,x", LAYERS, ids=_layer_id)
def test_layer_formula_matches_torch(module, x):
    check_layer(module, x)


FUNCTIONS = [
    (F.linear, (t(2, 3, 4), t(5, 4), t(5))), (F.layer_norm, (t(2, 3, 4), (4,))), (F.layer_norm, (t(2, 3, 4), (3,))),
]


@pytest.mark.parametrize("key,args", FUNCTIONS, ids=lambda v: getattr(v, "__name__", None) or getattr(v, "name", None))
def test_function_formula_matches_torch(key, args):
    check_function(key, args)


def test_formulas_decline_what_they_do_not_model():
    integer = torch.arange(6).reshape(2, 3)
    assert formula_for(operator.add)(Call((spec(integer), spec(t(2, 3))), {})) is None  # type promotion
    assert formula_for(F.relu)(Call((spec(integer),), {})) is None
    conv = nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect")
    assert formula_for(nn.Conv2d)(Call((spec(t(1, 2, 4, 4)),), {}, conv)) is None


@pytest.mark.parametrize("name", ["zoo:densenet_tiny", "zoo:mobilenet_tiny", "zoo:shufflenet_tiny",
                                  "zoo:vit_tiny", "zoo:layerscale_net", "zoo:gn_net"])
def test_propagation_with_formulas_equals_fake_tensor_run(name):
    model, inputs = models_zoo.load(name)
    gm = trace(model, num_inputs=len(inputs))
    assert propagate_counting(gm, inputs) == propagate_counting(gm, inputs, formulas=False)


@pytest.mark.parametrize("root_training", [True, False])
def test_propagation_leaves_every_module_in_the_roots_mode(root_training):
    """As ``gm.eval(); ...; gm.train(was_training)`` did: a mixed-mode model ends in the root's mode."""
    gm = trace(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()))
    gm.train(not root_training)
    gm.training = root_training
    propagate_counting(gm, (t(1, 3, 8, 8),))
    assert all(m.training is root_training for m in gm.modules())
