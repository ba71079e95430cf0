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


def test_deferred_module_runs_and_materializes_into_a_plain_graph_module():
    from graphprune.codegen import deferred_graph_module, materialize

    net = Net()
    traced = fx.symbolic_trace(net)
    gm = deferred_graph_module(traced, traced.graph, "Net")
    x = torch.randn(2, 3, 5, 5)
    assert torch.equal(gm(x), net(x))  # code generated on first use
    flatten = next(n for n in gm.graph.nodes if n.target is torch.flatten)
    flatten.args = (flatten.args[0], 2)
    gm.recompile()
    assert gm(x).shape == (2, 4, 9)  # an edit followed by recompile() is honoured
    materialize(gm)
    assert type(gm).__mro__[1] is fx.GraphModule
    assert "flatten(conv, 2)" in gm.code
    assert gm(x).shape == (2, 4, 9)


def test_compile_returns_a_plain_graph_module_with_code():
    import graphprune

    x = torch.randn(1, 3, 8, 8)
    net = Net().eval()
    result = graphprune.compile(net, (x,), sparsity=0.5)
    module = result.module
    assert type(module).__mro__[1] is fx.GraphModule
    assert type(module).forward.__name__ == "forward"  # generated, not a generate-on-first-call stub
    assert module.code == module.graph.python_code(root_module="self").src
    assert torch.allclose(module(x), net(x))  # the conv feeds the output: nothing to prune
