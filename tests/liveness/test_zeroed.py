"""The masked dense model read without copying it (graphprune.liveness.zeroed), and the grouped form of a
conv's connectivity (LinearView keeps (out, in / groups) instead of the block-diagonal matrix)."""

from __future__ import annotations

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from graphprune.liveness.layers import LinearView
from graphprune.liveness.zeroed import NOTHING, Zeroed


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 4)
        self.b = nn.Linear(6, 4)
        self.b.weight = self.a.weight  # one tensor, two names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(x)


def test_reads_equal_the_zeroed_copy_under_every_name_of_a_tied_tensor() -> None:
    torch.manual_seed(0)
    gm = fx.symbolic_trace(Tied())
    cuts = {"a.weight": {0: np.array([0, 2])}, "b.weight": {1: np.array([1, 3, 4])}, "a.bias": {0: np.array([1])}}
    zeroed = Zeroed(gm, cuts)
    expected = gm.a.weight.detach().clone()
    expected[[1, 3], :] = 0
    expected[:, [0, 2, 5]] = 0
    assert torch.equal(zeroed.value(gm.a.weight), expected) and torch.equal(zeroed.value(gm.b.weight), expected)
    assert np.array_equal(zeroed.nonzero(gm.b.weight), (expected != 0).numpy())
    assert torch.count_nonzero(zeroed.value(gm.a.bias)) == 1
    assert torch.count_nonzero(gm.a.weight) == 24  # the model's own tensors are untouched
    assert zeroed.value(gm.b.bias) is not None and torch.equal(zeroed.value(gm.b.bias), gm.b.bias.detach())
    assert torch.equal(NOTHING.value(gm.a.weight), gm.a.weight.detach())


def test_grouped_connectivity_reads_what_the_block_diagonal_matrix_reads() -> None:
    rng = np.random.default_rng(0)
    groups, per_out, per_in = 3, 2, 4
    nz = rng.random((groups * per_out, per_in)) < 0.4
    full = np.zeros((groups * per_out, groups * per_in), dtype=bool)
    for g in range(groups):
        full[g * per_out:(g + 1) * per_out, g * per_in:(g + 1) * per_in] = nz[g * per_out:(g + 1) * per_out]
    view = LinearView(None, 1, 1, nz, np.zeros(groups * per_out, dtype=bool), groups)
    assert view.shape == full.shape
    for _ in range(20):
        inputs, rows = rng.random(full.shape[1]) < 0.5, rng.random(full.shape[0]) < 0.5
        assert np.array_equal(view.rows_reading(inputs), (full & inputs[None, :]).any(1))
        assert np.array_equal(view.columns_read(rows), (full & rows[:, None]).any(0))
    assert np.array_equal(view.rows_reading(np.ones(full.shape[1], dtype=bool)), full.any(1))
