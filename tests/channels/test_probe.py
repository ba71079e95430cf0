"""Opaque functions are probed on element ids: pure movement gets an exact map, anything else freezes."""

from __future__ import annotations

import torch
from torch import nn

import graphprune
from tests.helpers import compile_and_check


@torch.fx.wrap
def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws, ws, c)


@torch.fx.wrap
def sort_channels(x: torch.Tensor) -> torch.Tensor:
    order = x.mean((0, 1, 2)).argsort()
    return x[..., order]


class Windows(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(3, 8), nn.Linear(8, 2)

    def forward(self, x):
        return self.b(window_partition(self.a(x), 2))


class Sorted(Windows):
    def forward(self, x):
        return self.b(sort_channels(self.a(x)))


def test_pure_movement_function_gets_an_exact_map():
    r = compile_and_check(Windows(), torch.randn(1, 4, 4, 3), sparsity=0.5)
    assert r.report.unknown_ops == [] and len(r.report.kept["a.weight"][0]) == 4


def test_data_dependent_gather_is_not_mistaken_for_movement():
    r = graphprune.compile(Sorted(), torch.randn(1, 4, 4, 3), sparsity=0.5)
    assert any(u["op"].endswith("sort_channels") for u in r.report.unknown_ops)
    assert "a.weight" not in r.report.kept
