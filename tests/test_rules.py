"""Tiny models across rule families: structure of the groups, what was removed, and exactness (the
per-family tests of the non-norm op families live in tests/ops/test_<family>.py)."""

from __future__ import annotations

import torch
from torch import nn

import graphprune
from tests.helpers import compile_and_check, randomize_norms
from tests.ops.checks import conv_bn


class Chain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = conv_bn(3, 8), conv_bn(8, 8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.b(self.a(x)).mean((2, 3)))


def test_chain_groups_and_removal():
    r = compile_and_check(randomize_norms(Chain()), torch.randn(2, 3, 8, 8), sparsity=0.5)
    kept = r.report.kept
    assert len(kept["a.0.weight"][0]) == 4 and len(kept["b.0.weight"][1]) == 4
    assert kept["a.0.weight"][0] == kept["a.1.running_var"][0] == kept["b.0.weight"][1]
    assert r.module.get_submodule("a.0").out_channels == 4 and r.module.get_submodule("b.1").num_features == 4
    assert r.module.head.in_features == 4 and r.module.head.out_features == 4  # output frozen
    assert r.report.params_after < r.report.params_before


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.body = conv_bn(3, 8), conv_bn(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x = self.stem(x)
        return self.head((x + self.body(x)).mean((2, 3)))


class Shuffle(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = conv_bn(3, 8)
        self.b = conv_bn(8, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        x = self.a(x)
        n, c, h, w = x.shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        return self.head(self.b(x).mean((2, 3)))


def test_channel_shuffle_folds_into_an_exact_permutation():
    r = compile_and_check(randomize_norms(Shuffle()), torch.randn(1, 3, 8, 8), sparsity=0.5)
    gathers = [n for n in r.module.graph.nodes if n.target is torch.index_select]
    assert len(gathers) == 1 and not any(n.target == "transpose" for n in r.module.graph.nodes)
    perm = getattr(r.module, gathers[0].args[2].target)
    assert sorted(perm.tolist()) == list(range(4))  # a permutation of the 4 surviving channels


def test_permutation_fold_matches_the_original_chain():
    from graphprune.canonicalize import fold_channel_permutations
    from graphprune.trace import trace
    from graphprune.values import propagate

    model = randomize_norms(Shuffle()).eval()
    x = torch.randn(2, 3, 8, 8)
    gm = trace(model)
    want = gm(x)
    assert fold_channel_permutations(gm, propagate(gm, (x,))) == 1
    torch.testing.assert_close(gm(x), want, rtol=0, atol=0)


def test_layernorm_marks_inexact_and_exact_mode_freezes():
    class LN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.norm, self.b = nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2)

        def forward(self, x):
            return self.b(self.norm(self.a(x)))

    x = torch.randn(3, 4)
    loose = graphprune.compile(LN(), x, sparsity=0.5, statistics="renormalize")
    assert any("LayerNorm" in i["reason"] for i in loose.report.inexact)
    assert loose.module.norm.normalized_shape == (4,)
    full = compile_and_check(LN(), x, sparsity=0.5)  # statistics = "exact": over the original 8 channels
    assert full.module.norm.normalized_shape == (4,) and full.report.inexact == []
    strict = compile_and_check(LN(), x, sparsity=0.5, exact=True)
    assert strict.module.norm.normalized_shape == (8,) and strict.report.kept == {}


def test_group_norm_removes_whole_norm_groups():
    class GN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.norm, self.out = nn.Conv2d(3, 8, 3), nn.GroupNorm(4, 8), nn.Conv2d(8, 2, 1)

        def forward(self, x):
            return self.out(self.norm(self.conv(x))).mean((2, 3))

    r = compile_and_check(GN(), torch.randn(1, 3, 6, 6), sparsity=0.5)
    assert r.module.norm.num_groups == 2 and r.module.norm.num_channels == 4
    kept = r.report.kept["conv.weight"][0]
    assert all(kept[i] // 2 == kept[i + 1] // 2 for i in range(0, len(kept), 2))


@torch.fx.wrap
def opaque_roll(x: torch.Tensor) -> torch.Tensor:
    return torch.roll(x, 1, dims=1)


def test_unknown_op_freezes_and_is_named():
    class Opaque(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = conv_bn(3, 8), nn.Conv2d(8, 2, 1)

        def forward(self, x):
            return self.b(opaque_roll(self.a(x))).mean((2, 3))

    r = compile_and_check(Opaque(), torch.randn(1, 3, 6, 6), sparsity=0.5)
    assert any(u["op"].endswith("opaque_roll") for u in r.report.unknown_ops)
    assert "a.0.weight" not in r.report.kept
    assert any("no channel rule" in f["reason"] for f in r.report.frozen)


def test_user_model_is_not_mutated():
    model = randomize_norms(Residual())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graphprune.compile(model, torch.randn(1, 3, 8, 8), sparsity=0.5)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
