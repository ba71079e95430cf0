"""Shape formulas agree with torch: same result shapes, dtypes and MACs as running the op, and they
decline (None) wherever torch raises, so error messages stay torch's own."""

from __future__ import annotations

import operator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import models_zoo
from graphprune.ops.registry import Method, formula_for
from graphprune.shapes import Call, Meta, spec
from graphprune.trace import trace
from graphprune.values import propagate_counting

pytestmark = pytest.mark.usefixtures("single_thread")


def t(*shape: int) -> torch.Tensor:
    return torch.randn(*shape)


def _meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return spec(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_meta(v) for v in value)
    return value


def _summary(value: Any) -> Any:
    if isinstance(value, (torch.Tensor, Meta)):
        return tuple(value.shape), value.dtype
    if isinstance(value, (tuple, list)) and not isinstance(value, torch.Size):
        return tuple(_summary(v) for v in value)
    return value


def _real(fn, args, kwargs):
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.no_grad():
            out = fn(*args, **kwargs)
    except Exception:
        return None, None
    return out, counter.get_total_flops() // 2


def check(key, fn, args, kwargs=None, module=None, handled=True):
    kwargs = kwargs or {}
    real, macs = _real(fn, args, kwargs)
    call = Call(_meta(tuple(args)), _meta(kwargs), module)
    got = formula_for(key)(call)
    if real is None:
        assert got is None, "formula accepted a call torch rejects"
        return
    if not handled:
        return
    assert got is not None, "formula declined a call it should model"
    assert _summary(got) == _summary(real)
    assert call.macs == macs


CONV = [
    (nn.Conv2d(4, 8, 3), t(2, 4, 9, 9)),
    (nn.Conv2d(4, 8, 3, stride=2, padding=1, dilation=2), t(1, 4, 10, 7)),
    (nn.Conv2d(4, 8, 3, groups=4, bias=False), t(1, 4, 5, 5)),
    (nn.Conv2d(4, 8, (1, 3), padding="same"), t(1, 4, 5, 6)),
    (nn.Conv2d(4, 8, 3, padding="valid"), t(4, 5, 5)),  # unbatched
    (nn.Conv1d(3, 6, 5, stride=3), t(2, 3, 20)),
    (nn.Conv3d(2, 4, 3, padding=(0, 1, 2)), t(1, 2, 4, 5, 6)),
    (nn.Conv2d(4, 8, 3), t(1, 5, 9, 9)),  # wrong channels
    (nn.Conv2d(4, 8, 5), t(1, 4, 3, 3)),  # kernel larger than input
]
LAYERS = [
    (nn.Linear(6, 3), t(6)), (nn.Linear(6, 3), t(2, 5, 6)), (nn.Linear(6, 3, bias=False), t(4, 6)),
    (nn.Linear(6, 3), t(4, 5)),
    (nn.BatchNorm2d(4).eval(), t(2, 4, 3, 3)), (nn.BatchNorm2d(4).eval(), t(2, 5, 3, 3)),
    (nn.BatchNorm1d(4).eval(), t(2, 4)), (nn.BatchNorm1d(4).eval(), t(2, 4, 7)),
    (nn.LayerNorm(6), t(2, 3, 6)), (nn.LayerNorm((3, 6)), t(2, 3, 6)), (nn.LayerNorm(6), t(2, 6, 3)),
    (nn.GroupNorm(2, 4), t(2, 4, 3)), (nn.GroupNorm(2, 4), t(2, 6, 3)),
    (nn.ReLU(), t(2, 3)), (nn.GELU(), t(2, 3)), (nn.Hardswish(), t(3)), (nn.Dropout(0.2).eval(), t(2, 3)),
    (nn.Identity(), t(2, 3)), (nn.Softmax(dim=1), t(2, 3)), (nn.Softmax(dim=3), t(2, 3)),
    (nn.Flatten(), t(2, 3, 4, 5)), (nn.Flatten(0, 2), t(2, 3, 4, 5)),
    (nn.MaxPool2d(3, 2, 1), t(1, 2, 7, 8)), (nn.MaxPool2d(3, 2, ceil_mode=True), t(1, 2, 8, 8)),
    (nn.MaxPool2d(2, dilation=2, padding=1), t(2, 5, 5)), (nn.MaxPool2d(2, padding=2), t(1, 2, 8, 8)),
    (nn.AvgPool2d(3, 2, 1, ceil_mode=True), t(1, 2, 6, 6)), (nn.AvgPool1d(2), t(1, 3, 7)),
    (nn.AdaptiveAvgPool2d(1), t(2, 3, 5, 5)), (nn.AdaptiveAvgPool2d((None, 2)), t(2, 3, 5, 5)),
    (nn.AdaptiveMaxPool1d(3), t(2, 3, 5)),
]


def _layer_id(value: Any) -> str | None:
    return type(value).__name__ if isinstance(value, nn.Module) else None


@pytest.mark.parametrize("module,x", CONV + LAYERS, ids=_layer_id)
def test_layer_formula_matches_torch(module, x):
    check(type(module), module, (x,), module=module)


FUNCTIONS = [
    (operator.add, (t(2, 3, 1), t(4))), (operator.mul, (t(2, 3), 2.0)), (operator.truediv, (3, t(2, 3))),
    (operator.add, (t(2, 3), t(4))), (torch.add, (t(2, 1), t(1, 5))), (Method("mul"), (t(2, 3), t(3))),
    (torch.cat, ([t(2, 3), t(4, 3)],)), (torch.cat, ([t(2, 3), t(2, 5)], 1)), (torch.cat, ([t(2, 3), t(2, 4)],)),
    (torch.flatten, (t(2, 3, 4), 1)), (Method("flatten"), (t(2, 3, 4), 0, 1)),
    (Method("view"), (t(2, 3, 4), 6, -1)), (Method("view"), (t(2, 3, 4), (4, 6))), (Method("view"), (t(2, 3), 4, -1)),
    (torch.reshape, (t(2, 3, 4), (-1,))), (Method("permute"), (t(2, 3, 4), 2, 0, 1)),
    (torch.permute, (t(2, 3, 4), (0, 2, 1))), (Method("transpose"), (t(2, 3, 4), -1, 0)),
    (Method("unsqueeze"), (t(2, 3), 2)), (Method("expand"), (t(3, 1), 2, -1, 4)), (Method("expand"), (t(3, 2), 3, 4)),
    (Method("chunk"), (t(2, 7), 3, 1)), (torch.chunk, (t(6, 2), 4)), (Method("split"), (t(7, 2), 3)),
    (torch.split, (t(7, 2), [2, 5])), (torch.split, (t(7, 2), [2, 4])),
    (operator.getitem, (t(2, 3, 4), (slice(None), 0))), (operator.getitem, (t(2, 3, 4), (Ellipsis, slice(1, None, 2)))),
    (operator.getitem, (t(2, 3, 4), (None, 1, Ellipsis, None))), (operator.getitem, (t(2, 3), (0, 5))),
    (torch.mean, (t(2, 3, 4), (2, 3))), (Method("mean"), (t(2, 3, 4), -1, True)), (torch.sum, (t(2, 3, 4),)),
    (torch.matmul, (t(2, 3, 4), t(4, 5))), (torch.matmul, (t(2, 1, 3, 4), t(5, 4, 6))),
    (torch.bmm, (t(2, 3, 4), t(2, 4, 5))),
    (torch.matmul, (t(2, 3, 4), t(3, 5))), (F.linear, (t(2, 3, 4), t(5, 4), t(5))),
    (F.layer_norm, (t(2, 3, 4), (4,))), (F.layer_norm, (t(2, 3, 4), (3,))),
    (F.scaled_dot_product_attention, (t(1, 2, 5, 4), t(1, 2, 7, 4), t(1, 2, 7, 3))),
    (F.scaled_dot_product_attention, (t(2, 5, 4), t(2, 7, 4), t(2, 7, 3))),
    (Method("size"), (t(2, 3), 1)), (Method("size"), (t(2, 3),)), (Method("dim"), (t(2, 3),)),
    (F.relu, (t(2, 3),)), (F.gelu, (t(2, 3),)), (torch.softmax, (t(2, 3), -1)), (F.dropout, (t(2, 3), 0.1, False)),
    (F.adaptive_avg_pool2d, (t(1, 3, 5, 5), (2, 3))),
]


@pytest.mark.parametrize("key,args", FUNCTIONS, ids=lambda v: getattr(v, "__name__", None) or getattr(v, "name", None))
def test_function_formula_matches_torch(key, args):
    fn = (lambda *a: getattr(a[0], key.name)(*a[1:])) if isinstance(key, Method) else key
    check(key, fn, args)


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
