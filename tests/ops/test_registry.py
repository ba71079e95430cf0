"""The op table itself (graphprune/ops/registry.py): how a user supports their own layer, how the lookups
treat subclasses (docs/architecture.md documents both), and registrations for an optional package, which
wait until it is imported and never replace one another."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn

import graphprune
from graphprune.ops import registry
from graphprune.ops.registry import SPECS, Trait, alias, has_trait, inherited, lookup, register_when_imported
from tests.helpers import compile_and_check


class GainConv(nn.Conv2d):
    """A conv whose forward multiplies its output by a learned gain: channel for channel, as a conv."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.gain = nn.Parameter(torch.tensor(1.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight, self.bias) * self.gain


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.body = GainConv(16, 16, 3, padding=1)
        self.head = nn.Conv2d(16, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(torch.relu(self.stem(x)))))


def test_a_leaf_subclass_with_its_own_forward_is_unknown_until_aliased() -> None:
    """Kept as a leaf (fx would otherwise trace into its forward), the layer is one call graphprune must
    know: unknown and frozen before the alias, pruned exactly after it."""
    x = torch.randn(1, 3, 8, 8)
    before = graphprune.compile(Net().eval(), (x,), sparsity=0.5, leaf_modules=(GainConv,))
    assert [u["op"] for u in before.report.unknown_ops] == [f"{GainConv.__module__}.GainConv"]
    assert tuple(before.module.body.weight.shape) == (16, 16, 3, 3)  # frozen: never guessed
    alias([GainConv], like=nn.Conv2d)
    try:
        after = compile_and_check(Net(), x, sparsity=0.5, leaf_modules=(GainConv,))
        assert tuple(after.module.body.weight.shape) == (8, 8, 3, 3)
        assert (after.module.body.in_channels, after.module.body.out_channels) == (8, 8)  # resize, inherited
        assert after.report.unknown_ops == []
    finally:
        SPECS.pop(GainConv, None)


def test_lookups_treat_subclasses_as_documented() -> None:
    """A channel rule needs the base's forward; traits and resize follow isinstance."""
    assert lookup(GainConv) is None  # its own forward
    assert has_trait(GainConv, Trait.FILTER_ROWS) and has_trait(GainConv(1, 1, 1), Trait.WEIGHT_LAYER)
    assert inherited(GainConv, "resize") is inherited(nn.Conv2d, "resize") is not None

    class PlainSubclass(nn.Conv2d):
        pass

    assert lookup(PlainSubclass) is lookup(nn.Conv2d)


PACKAGE = "graphprune_test_optional_package"


@pytest.fixture
def optional_package():
    """A package name nobody has imported yet; calling the fixture's value imports it."""
    assert PACKAGE not in sys.modules
    yield lambda: sys.modules.setdefault(PACKAGE, types.ModuleType(PACKAGE))
    sys.modules.pop(PACKAGE, None)
    registry._PENDING.pop(PACKAGE, None)


def test_every_registration_for_a_package_runs_once_it_is_imported(optional_package):
    ran: list[str] = []
    register_when_imported(PACKAGE, lambda: ran.append("first"))
    register_when_imported(PACKAGE, lambda: ran.append("second"))
    assert ran == []
    optional_package()
    assert lookup(object) is None  # any lookup runs the pending registrations
    assert ran == ["first", "second"]
    assert lookup(object) is None
    assert ran == ["first", "second"]


def test_a_registration_for_an_imported_package_runs_at_once(optional_package):
    optional_package()
    ran: list[str] = []
    register_when_imported(PACKAGE, lambda: ran.append("now"))
    assert ran == ["now"]
    assert PACKAGE not in registry._PENDING
