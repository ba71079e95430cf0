"""The tracing speed-ups (cached unpacking, parameter names from a map) leave the traced graph unchanged."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
import torch.fx as fx
from torch import nn

import graphprune.trace as gtrace
import models_zoo


class Unpacks(nn.Module):
    """Unpacks proxies (shape, chunk) and reads loose and shared parameters repeatedly."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(4))
        self.proj = nn.Linear(4, 8)
        self.tied = self.proj.weight

    def forward(self, x):
        b, n, c = x.shape
        a, _ = self.proj(x * self.scale).chunk(2, dim=-1)
        return a.reshape(b, n, -1) + (x @ self.tied.T)[..., :4] * self.scale


def _plain(model: nn.Module, monkeypatch) -> fx.GraphModule:
    with monkeypatch.context() as m:
        m.setattr(gtrace, "cached_unpacking", nullcontext)
        m.setattr(gtrace.GraphpruneTracer, "getattr", fx.Tracer.getattr)
        return gtrace.trace(model)


def _nodes(gm: fx.GraphModule) -> list[tuple]:
    return [(n.op, str(n.target), str(n.args), str(n.kwargs)) for n in gm.graph.nodes]


@pytest.mark.parametrize("build", [Unpacks, lambda: models_zoo.load("zoo:vit_tiny")[0],
                                   lambda: models_zoo.load("zoo:layerscale_net")[0]])
def test_speedups_trace_the_same_graph(build, monkeypatch):
    torch.manual_seed(0)
    plain = _plain(build(), monkeypatch)
    fast = gtrace.trace(build())
    assert _nodes(fast) == _nodes(plain)
    assert fast.code == plain.code
    assert any(n.op == "get_attr" for n in fast.graph.nodes)
