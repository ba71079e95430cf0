"""nn.MultiheadAttention is traced through its decomposition: same function, prunable heads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from graphprune.trace import trace
from tests.helpers import compile_and_check


class SelfAttention(nn.Module):
    def __init__(self, batch_first: bool, need_weights: bool, bias: bool = True) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 16)
        self.attn = nn.MultiheadAttention(16, 4, batch_first=batch_first, bias=bias)
        self.head = nn.Linear(16, 3)
        self.need_weights = need_weights

    def forward(self, x, mask=None):
        h = self.embed(x)
        out, weights = self.attn(h, h, h, need_weights=self.need_weights, key_padding_mask=mask)
        return self.head(out) if weights is None else self.head(out) + weights.sum()


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("need_weights", [True, False])
def test_decomposition_matches_module(batch_first, need_weights):
    model = SelfAttention(batch_first, need_weights).eval()
    x = torch.randn(2, 5, 6) if batch_first else torch.randn(5, 2, 6)
    gm = trace(model, num_inputs=1)
    assert not any(isinstance(m, nn.MultiheadAttention) for m in gm.modules() if m is not gm.attn)
    assert all(n.target != "attn" for n in gm.graph.nodes)  # no opaque call left
    torch.testing.assert_close(gm(x), model(x), atol=1e-6, rtol=1e-5)


def test_decomposition_with_key_padding_mask():
    model = SelfAttention(True, False).eval()
    x, mask = torch.randn(2, 5, 6), torch.tensor([[False] * 5, [False, False, False, True, True]])
    torch.testing.assert_close(trace(model, num_inputs=2)(x, mask), model(x, mask), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("bias", [True, False])
def test_attention_channels_prune_exactly(bias):
    r = compile_and_check(SelfAttention(True, False, bias), torch.randn(2, 5, 6), sparsity=0.5)
    assert r.report.unknown_ops == []
    rows, cols = r.module.attn.in_proj_weight.shape
    assert cols == 8 and rows < 48 and rows % 4 == 0  # whole head dims removed across all 4 heads
