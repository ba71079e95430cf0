"""ATen ops whose arguments are not a torch function's (``aten.slice``, ``aten.select``, ``aten.index``,
``aten.embedding``, ``aten.addmm``) are lowered at capture to the call they mean
(``graphprune.ops.aten.lower``): both captures then prune the same channels exactly. And an attention
mask's per-head dim is coupled with the heads it is added to (``ops/attention.py``), in both captures."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import compile_and_check

pytestmark = pytest.mark.usefixtures("single_thread")


class Lowered(nn.Module):
    """Every lowered op on a channel dim or beside one: a slice and a select, an embedding, an
    ``x[index]`` gather of positions; and GPT-2's ``Conv1D`` (``addmm`` with an (in, out) weight), lowered
    in both captures (``addmm=False`` writes it as ``@`` and ``+`` instead)."""

    def __init__(self, addmm: bool = True) -> None:
        super().__init__()
        self.addmm = addmm
        self.conv, self.emb = nn.Conv1d(4, 12, 3, padding=1), nn.Embedding(10, 12)
        self.w, self.b = nn.Parameter(torch.randn(8, 6) * 0.3), nn.Parameter(torch.randn(6) * 0.1)
        self.head = nn.Linear(6, 3)
        self.register_buffer("positions", torch.tensor([0, 2, 3, 5]))

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x) + self.emb(ids).transpose(1, 2))  # (B, 12, L)
        h = h[:, 2:10]  # a slice of the channel dim: re-based after removal
        h = h[:, :, self.positions]  # gather positions
        last = h.select(2, -1)  # (B, 8)
        y = torch.addmm(self.b, last, self.w) if self.addmm else last @ self.w + self.b  # (B, 6)
        return self.head(torch.relu(y))


class PerHeadBias(nn.Module):
    """T5-style attention: a learned per-head bias (an embedding with one column per head) is the mask."""

    def __init__(self, heads: int = 4, dim: int = 8) -> None:
        super().__init__()
        self.heads, self.dim = heads, dim
        self.q, self.k, self.v = (nn.Linear(16, heads * dim) for _ in range(3))
        self.out = nn.Linear(heads * dim, 16)
        self.bias = nn.Embedding(8, heads)
        self.register_buffer("buckets", torch.randint(0, 8, (6, 6)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n = x.shape[0], x.shape[1]
        q, k, v = (proj(x).view(b, n, self.heads, self.dim).transpose(1, 2) for proj in (self.q, self.k, self.v))
        mask = self.bias(self.buckets).permute(2, 0, 1).unsqueeze(0)  # (1, heads, n, n)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, n, self.heads * self.dim))


def test_lowered_aten_ops_prune_like_their_torch_calls() -> None:
    torch.manual_seed(0)
    inputs = (torch.randn(2, 4, 7), torch.randint(0, 10, (2, 7)))
    exported = compile_and_check(Lowered(addmm=False), inputs, capture="export")
    traced = compile_and_check(Lowered(addmm=False), inputs, capture="fx")
    assert exported.report.unknown_ops == []
    targets = {str(n.target) for n in exported.state.gm.graph.nodes}
    assert not targets & {"aten.slice.Tensor", "aten.select.int", "aten.index.Tensor", "aten.embedding.default"}
    assert {k: {d: len(i) for d, i in v.items()} for k, v in exported.report.kept.items()} == \
        {k: {d: len(i) for d, i in v.items()} for k, v in traced.report.kept.items()}  # the same groups, widths
    assert exported.module.w.shape[1] < 6 and exported.module.conv.weight.shape[0] < 12


def test_addmm_is_a_bias_plus_a_product() -> None:
    torch.manual_seed(0)
    inputs = (torch.randn(2, 4, 7), torch.randint(0, 10, (2, 7)))
    exported = compile_and_check(Lowered(), inputs, capture="export")
    assert exported.report.unknown_ops == []
    assert "aten.addmm.default" not in {str(n.target) for n in exported.state.gm.graph.nodes}
    assert exported.module.w.shape[1] < 6 and exported.module.b.shape[0] == exported.module.w.shape[1]


@pytest.mark.parametrize("capture", ["fx", "export"])
def test_a_per_head_mask_keeps_every_head_it_is_added_to(capture: str) -> None:
    torch.manual_seed(0)
    result = compile_and_check(PerHeadBias(), torch.randn(2, 6, 16), capture=capture)
    assert result.module.bias.weight.shape == (8, 4)  # the heads are not pruned, so neither is the bias
    assert result.module.v.weight.shape[0] < 32  # the head dim is


@pytest.mark.parametrize("capture", ["fx", "export"])
def test_addmm_prunes_alike_in_both_captures_and_as_its_spelled_out_form(capture: str) -> None:
    """``torch.addmm`` in an fx trace is lowered as its ATen form is in an export: no unknown op, and the
    same kept widths as the model written with ``@`` and ``+``."""
    torch.manual_seed(0)
    inputs = (torch.randn(2, 4, 7), torch.randint(0, 10, (2, 7)))
    lowered = compile_and_check(Lowered(), inputs, capture=capture)
    spelled = compile_and_check(Lowered(addmm=False), inputs, capture=capture)
    assert lowered.report.unknown_ops == [] and lowered.report.frozen == spelled.report.frozen
    assert {k: {d: len(i) for d, i in v.items()} for k, v in lowered.report.kept.items()} == \
        {k: {d: len(i) for d, i in v.items()} for k, v in spelled.report.kept.items()}
    assert lowered.module.w.shape[1] < 6 and "addmm" not in str(lowered.state.gm.code)

