"""Bad input gets a clear error naming what is wrong, and nothing of the user's is touched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import graphprune
import models_zoo
from graphprune.errors import InputError, PlanError, TraceError, UnknownModelError


def small():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1))


def test_model_must_be_a_module():
    with pytest.raises(InputError, match="torch.nn.Module"):
        graphprune.compile(lambda x: x, torch.randn(1, 3, 8, 8))


def test_example_inputs_of_wrong_type():
    with pytest.raises(InputError, match=r"example_inputs\[0\]"):
        graphprune.compile(small(), ("not a tensor",))


def test_example_inputs_of_wrong_shape_names_the_shape():
    with pytest.raises(InputError, match=r"\(1, 5, 8, 8\)"):
        graphprune.compile(small(), torch.randn(1, 5, 8, 8))


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5, float("nan"), "half"])
def test_sparsity_outside_unit_interval(sparsity):
    with pytest.raises(InputError, match="sparsity"):
        graphprune.compile(small(), torch.randn(1, 3, 8, 8), sparsity=sparsity)


def test_unknown_option_names_the_key():
    with pytest.raises(PlanError, match=r"^plan: sparsty: unknown key .*did you mean .sparsity."):
        graphprune.compile(small(), torch.randn(1, 3, 8, 8), plan={"sparsty": 0.5})


def test_unknown_model_name_suggests_close_matches():
    with pytest.raises(UnknownModelError, match="resnet18"):
        models_zoo.load("torchvision:resnet81")


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Sequential(Branchy())

    def forward(self, x):
        return self.inner(x)


class Branchy(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: fx cannot trace this
            return x
        return -x


def test_untraceable_model_names_module_line_and_fix():
    with pytest.raises(TraceError) as info:
        graphprune.compile(DataDependent(), torch.randn(1, 3, 4, 4))
    message = str(info.value)
    assert "inner.0" in message and "Branchy" in message
    assert "test_bad_input.py" in message and "leaf_modules=[Branchy]" in message


def test_leaf_module_workaround_compiles_and_freezes():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), Branchy(), nn.Conv2d(4, 2, 1))
    r = graphprune.compile(model, torch.randn(1, 3, 4, 4), leaf_modules=[Branchy])
    assert any("Branchy" in u["op"] for u in r.report.unknown_ops)
    assert r.report.kept == {}


def test_state_dict_unchanged_after_compile():
    model, inputs = models_zoo.load("zoo:mobilenet_tiny")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graphprune.compile(model, inputs, sparsity=0.5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
