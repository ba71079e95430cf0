"""Nodes run one at a time get plain mutable list/dict arguments, as the generated forward passes them
(issue 11, defect 4: torchvision's swin3d failed with "'immutable_list' object does not support
mutation" although the model runs)."""

from __future__ import annotations

import pytest
import torch
import torch.fx as fx
from torch import nn

import graphprune
from graphprune.eager_args import mutable, node_args
from graphprune.testing import masked_equivalence_error
from graphprune.values import TensorInfo, propagate, propagate_counting

pytestmark = pytest.mark.usefixtures("single_thread")


def clamp_window(window: list[int], size: list[int]) -> list[int]:
    """Edits its list argument, as torchvision's ``_get_window_and_shift_size`` does."""
    for i in range(len(window)):
        if size[i] <= window[i]:
            window[i] = size[i]
    return window


def roll_by(x: torch.Tensor, shifts: list[int]) -> torch.Tensor:
    """Pure movement along the spatial dims that edits its list argument (an opaque function the
    analysis probes with element ids)."""
    shifts[0] = -shifts[0]
    return torch.roll(x, shifts=shifts, dims=(2, 3))


torch.fx.wrap("clamp_window")
torch.fx.wrap("roll_by")


class EditsItsList(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        window = clamp_window([8, 2], [y.shape[2], y.shape[3]])
        y = roll_by(torch.relu(y), [1, 1])
        return self.b(y) * window[1]


def test_mutable_copies_fx_containers():
    node_list = fx.node.map_arg([1, [2, {"k": [3]}]], lambda n: n)
    plain = mutable(node_list)
    assert type(plain) is list and type(plain[1]) is list and type(plain[1][1]) is dict
    assert type(plain[1][1]["k"]) is list
    plain[1][1]["k"].append(4)  # a fresh copy: the fx value is untouched
    assert node_list[1][1]["k"] == [3]


def test_node_args_are_fresh_plain_copies():
    gm = fx.symbolic_trace(EditsItsList())
    node = next(n for n in gm.graph.nodes if n.target is clamp_window)
    args, _ = node_args(node, lambda n: 6)
    assert type(args[0]) is list and args[0] == [8, 2]
    args[0][0] = 0
    assert node_args(node, lambda n: 6)[0][0] == [8, 2]  # the graph's literal is not edited


@pytest.mark.parametrize("formulas", [True, False])
def test_shape_propagation_runs_a_function_that_edits_its_list(formulas):
    gm = fx.symbolic_trace(EditsItsList())
    values, _ = propagate_counting(gm, (torch.randn(1, 3, 5, 5),), formulas=formulas)
    assert values[next(n.name for n in gm.graph.nodes if n.target is clamp_window)] == [5, 2]
    assert values["output"] == TensorInfo((1, 4, 5, 5), torch.float32)


class DataDependent(EditsItsList):
    """A ``nonzero`` that fake tensors cannot size: shape propagation falls back to a real run."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + torch.nonzero(x).shape[0] * 0


def test_real_tensor_fallback_runs_a_function_that_edits_its_list():
    gm = fx.symbolic_trace(DataDependent())
    values = propagate(gm, (torch.randn(1, 3, 5, 5),))
    assert values[next(n.name for n in gm.graph.nodes if n.target is clamp_window)] == [5, 2]
    assert values["output"].shape == (1, 4, 5, 5)


def test_compile_probes_and_prunes_through_a_function_that_edits_its_list():
    model, x = EditsItsList().eval(), torch.randn(1, 3, 6, 6)
    r = graphprune.compile(model, (x,), sparsity=0.5)
    assert not any("roll_by" in u["op"] for u in r.report.unknown_ops)  # probed as movement, not frozen
    assert len(r.report.kept["a.weight"][0]) < 8
    assert r.module(x).shape == model(x).shape
    assert masked_equivalence_error(model, r.module, r.report.kept, (x,)) < 1e-5
