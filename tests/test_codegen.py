"""recompile_if_changed: skips only when the regenerated code would be the same function."""

import torch
import torch.fx as fx
from torch import nn

from graphprune.codegen import recompile_if_changed


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.flatten(self.conv(x), 1).relu()


def test_unchanged_graph_keeps_its_code_and_still_follows_module_changes():
    gm = fx.symbolic_trace(Net())
    forward = type(gm).forward
    assert recompile_if_changed(gm) is False
    assert type(gm).forward is forward
    gm.conv = nn.Conv2d(3, 2, 3)  # modules are looked up at run time: no new code needed
    assert gm(torch.randn(1, 3, 5, 5)).shape == (1, 18)


def test_changed_argument_recompiles():
    gm = fx.symbolic_trace(Net())
    flatten = next(n for n in gm.graph.nodes if n.target is torch.flatten)
    flatten.args = (flatten.args[0], 2)
    assert recompile_if_changed(gm) is True
    assert gm(torch.randn(1, 3, 5, 5)).shape == (1, 4, 9)
    assert recompile_if_changed(gm) is False


def test_same_name_different_function_recompiles():
    """Identical source text over a global bound to another object is a different function."""
    gm = fx.symbolic_trace(Net())
    flatten = next(n for n in gm.graph.nodes if n.target is torch.flatten)

    def flatten_(x, dim):  # noqa: ARG001 - prints under the same global name as torch.flatten
        return x.sum(dim=(2, 3))

    flatten_.__name__ = "flatten"
    flatten.target = flatten_
    recompiled = recompile_if_changed(gm)
    assert gm(torch.randn(1, 3, 5, 5)).shape == (1, 4)
    assert recompiled is True
