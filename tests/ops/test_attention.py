"""Attention family (graphprune/ops/attention.py): head dims are pruned through reshapes and attention,
einsum couples its shared indices; formulas and declared MAC terms of matmul and attention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import graphprune
from tests.helpers import compile_and_check
from tests.ops.checks import check_function, key_id, removes_channels_exactly, t

pytestmark = pytest.mark.usefixtures("single_thread")


class Attention(nn.Module):
    def __init__(self, dim: int = 16, heads: int = 2, use_sdpa: bool = False, keywords: bool = False) -> None:
        super().__init__()
        self.heads, self.head_dim, self.use_sdpa, self.keywords = heads, dim // heads, use_sdpa, keywords
        self.embed = nn.Linear(4, dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        x = self.embed(x)
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.keywords:
            out = F.scaled_dot_product_attention(value=v, query=q, key=k)
        elif self.use_sdpa:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            out = (q @ k.transpose(-2, -1) * self.head_dim**-0.5).softmax(-1) @ v
        return self.head(x + self.proj(out.transpose(1, 2).reshape(b, n, -1)))


@pytest.mark.parametrize("use_sdpa", [False, True])
def test_attention_head_dim_pruning_rewrites_reshape(use_sdpa):
    r = compile_and_check(Attention(use_sdpa=use_sdpa), torch.randn(2, 5, 4), sparsity=0.5)
    assert r.module.qkv.out_features == 24  # 3 x 2 heads x 4 of 8 head dims
    assert r.module.embed.out_features == 8


class Einsum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.out = nn.Linear(4, 8), nn.Linear(4, 8), nn.Linear(5, 2)

    def forward(self, x):
        scores = torch.einsum("bid,bjd->bij", self.q(x), self.k(x))
        return self.out(scores).mean(1)


def test_einsum_removes_channels_exactly():
    removes_channels_exactly(Einsum, lambda: torch.randn(2, 5, 4))


FUNCTIONS = [
    (torch.matmul, (t(2, 3, 4), t(4, 5))), (torch.matmul, (t(2, 1, 3, 4), t(5, 4, 6))),
    (torch.bmm, (t(2, 3, 4), t(2, 4, 5))), (torch.matmul, (t(2, 3, 4), t(3, 5))),
    (F.scaled_dot_product_attention, (t(1, 2, 5, 4), t(1, 2, 7, 4), t(1, 2, 7, 3))),
    (F.scaled_dot_product_attention, (t(2, 5, 4), t(2, 7, 4), t(2, 7, 3))),
]


@pytest.mark.parametrize("key,args", FUNCTIONS, ids=key_id)
def test_function_formula_matches_torch(key, args):
    check_function(key, args)


@pytest.mark.parametrize("use_sdpa", [False, True])
def test_declared_mac_terms_predict_the_pruned_model(use_sdpa):
    """The cost model's MACs (matmul and attention terms declared by this family) equal the MACs measured
    on the pruned model: without those terms the budget search would mis-estimate attention."""
    plan = {"prune": [{"select": "*", "budget": {"macs": 0.5}}], "allocate": {"scope": "global", "max_per_group": 0.9}}
    report = graphprune.compile(Attention(use_sdpa=use_sdpa), torch.randn(2, 5, 4), plan=plan).report
    assert report.macs_after < report.macs_before
    assert report.budget["estimated"] == pytest.approx(report.macs_after / report.macs_before, abs=1e-4)


def test_attention_mac_terms_read_keyword_arguments():
    """``scaled_dot_product_attention(value=v, query=q, key=k)`` under a MAC budget: its MAC terms are read
    by argument name, so the budget search sees what the positional call gives it."""
    plan = {"prune": [{"select": "*", "budget": {"macs": 0.5}}], "allocate": {"scope": "global", "max_per_group": 0.9}}
    x = torch.randn(2, 5, 4)
    torch.manual_seed(0)
    keywords = graphprune.compile(Attention(use_sdpa=True, keywords=True), x, plan=plan).report
    torch.manual_seed(0)
    positional = graphprune.compile(Attention(use_sdpa=True), x, plan=plan).report
    assert keywords.macs_after < keywords.macs_before
    assert keywords.budget["estimated"] == pytest.approx(keywords.macs_after / keywords.macs_before, abs=1e-4)
    assert (keywords.macs_before, keywords.macs_after, keywords.kept) == \
        (positional.macs_before, positional.macs_after, positional.kept)
