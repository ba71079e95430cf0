"""``structure = "heads"``: whole attention heads are removed (fewer heads, head_dim unchanged), exactly,
on torchvision's and timm's ViTs and on grouped-query attention written as Llama writes it; MLP hidden
units are pruned as channels in the same plan."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import graphprune
from graphprune.errors import PlanError
from graphprune.testing import masked_equivalence_error, relative_error
from tests.helpers import make_nontrivial


def heads_plan(attention: str, mlp: str | None = None) -> dict:
    rules = [{"select": attention, "structure": "heads", "sparsity": 0.5}]
    if mlp is not None:
        rules.append({"select": mlp, "structure": "channel", "sparsity": 0.5})
    return {"prune": rules}


def kept_heads(kept_rows: list[int], head_dim: int, slots: int, heads: int) -> list[set[int]]:
    """Per q/k/v slot of a projection's rows, the heads whose every row is kept (asserting no head is
    kept in part: a partly kept head would mean head_dim shrank)."""
    rows = np.zeros(slots * heads * head_dim, dtype=bool)
    rows[kept_rows] = True
    per_head = rows.reshape(slots, heads, head_dim)
    assert (per_head.all(-1) == per_head.any(-1)).all(), "a head lost some of its head_dim rows"
    return [set(np.flatnonzero(per_head[s].all(-1)).tolist()) for s in range(slots)]


def head_reshapes(gm: torch.fx.GraphModule, head_dim: int) -> list[tuple]:
    """The literal (heads, head_dim) sizes of every reshape into heads in the pruned graph."""
    out = []
    for node in gm.graph.nodes:
        if node.target in ("reshape", "view") and len(node.args) >= 4 and node.args[-1] == head_dim \
                and isinstance(node.args[-2], int):
            out.append((node.args[-2], node.args[-1]))
    return out


def assert_exact_and_not_vacuous(model: nn.Module, pruned: nn.Module, kept: dict, x: torch.Tensor, tol: float) -> None:
    """Masked equivalence, on outputs the removal really changed (so the check can fail)."""
    with torch.no_grad():
        assert relative_error(pruned(x), model(x)) > 1e-3
    assert masked_equivalence_error(model, pruned, kept, (x,)) < tol


VITS = {
    "torchvision:vit_b_16": (lambda: torchvision.models.vit_b_16(image_size=32), "*.self_attention", "*.mlp.0",
                             "encoder.layers.encoder_layer_{}.self_attention.in_proj_weight", 12, 64),
    "timm:vit_small_patch16_224": (lambda: timm.create_model("vit_small_patch16_224", img_size=32),
                                   "*.attn.qkv", "*.mlp.fc1", "blocks.{}.attn.qkv.weight", 6, 64),
    "timm:deit_tiny_patch16_224": (lambda: timm.create_model("deit_tiny_patch16_224", img_size=32),
                                   "*.attn.qkv", "*.mlp.fc1", "blocks.{}.attn.qkv.weight", 3, 64),
}


@pytest.mark.parametrize("name", sorted(VITS))
def test_vit_heads_plan_removes_whole_heads_exactly(name: str) -> None:
    build, attention, mlp, qkv, heads, head_dim = VITS[name]
    torch.manual_seed(0)
    model = make_nontrivial(build().eval())
    x = torch.randn(2, 3, 32, 32)
    result = graphprune.compile(model, (x,), heads_plan(attention, mlp))
    kept = result.report.kept
    for block in range(12):  # all three have 12 blocks
        q, k, v = kept_heads(kept[qkv.format(block)][0], head_dim, 3, heads)
        assert q == k == v, "q, k and v must lose the same heads"
        assert 0 < len(q) < heads  # heads removed, some kept
    reshapes = head_reshapes(result.module, head_dim)
    assert reshapes and all(h < heads and d == head_dim for h, d in reshapes), reshapes
    mlp_rows = [dims[0] for fqn, dims in kept.items() if fqn.endswith(("mlp.0.weight", "mlp.fc1.weight"))]
    assert mlp_rows and all(0 < len(r) < 4 * heads * head_dim for r in mlp_rows)  # MLP hidden units pruned too
    assert_exact_and_not_vacuous(model, result.module, kept, x, 1e-4)


class GroupedQueryAttention(nn.Module):
    """Attention with fewer key/value heads than query heads, each key/value head repeated for its
    query group before a causal ``scaled_dot_product_attention``, by ``repeat_interleave`` or by
    Llama's ``repeat_kv`` (a new axis, ``expand``, ``reshape``)."""

    def __init__(self, dim: int = 32, heads: int = 8, kv_heads: int = 2, head_dim: int = 4,
                 llama_repeat: bool = False) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim, self.llama_repeat = heads, kv_heads, head_dim, llama_repeat
        self.q_proj = nn.Linear(dim, heads * head_dim)
        self.k_proj = nn.Linear(dim, kv_heads * head_dim)
        self.v_proj = nn.Linear(dim, kv_heads * head_dim)
        self.o_proj = nn.Linear(heads * head_dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 64), nn.GELU(), nn.Linear(64, dim))

    def repeat_kv(self, t: torch.Tensor) -> torch.Tensor:
        rep = self.heads // self.kv_heads
        if not self.llama_repeat:
            return t.repeat_interleave(rep, dim=1)
        batch, kv_heads, length, head_dim = t.shape
        t = t[:, :, None, :, :].expand(batch, kv_heads, rep, length, head_dim)
        return t.reshape(batch, kv_heads * rep, length, head_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.kv_heads, self.head_dim).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, self.repeat_kv(k), self.repeat_kv(v), is_causal=True)
        h = x + self.o_proj(o.transpose(1, 2).reshape(b, n, self.heads * self.head_dim))
        return h + self.mlp(h)


@pytest.mark.parametrize("llama_repeat", [False, True])
def test_grouped_query_attention_loses_a_kv_head_with_its_whole_query_group(llama_repeat: bool) -> None:
    torch.manual_seed(0)
    model = GroupedQueryAttention(heads=8, kv_heads=4, llama_repeat=llama_repeat).eval()
    x = torch.randn(2, 5, 32)
    plan = {"prune": [{"select": "*", "structure": "heads", "sparsity": 0.5},
                      {"select": "mlp.0", "structure": "channel", "sparsity": 0.5}]}
    result = graphprune.compile(model, (x,), plan)
    kept = result.report.kept
    (q,) = kept_heads(kept["q_proj.weight"][0], 4, 1, 8)
    (k,) = kept_heads(kept["k_proj.weight"][0], 4, 1, 4)
    (v,) = kept_heads(kept["v_proj.weight"][0], 4, 1, 4)
    assert k == v and len(k) == 2  # half the key/value heads go ...
    assert q == {i for i in range(8) if i // 2 in k}  # ... each with both query heads of its group
    assert kept["o_proj.weight"][1] == kept["q_proj.weight"][0]
    assert len(kept["mlp.0.weight"][0]) == 32  # the same plan prunes the MLP as channels
    assert "x" not in kept and "o_proj.bias" not in kept  # the residual width is not a head group: kept whole
    assert sorted(head_reshapes(result.module, 4)) == [(2, 4), (2, 4), (4, 4)]
    assert_exact_and_not_vacuous(model, result.module, kept, x, 1e-5)


def test_heads_rule_without_heads_in_its_selection_says_so() -> None:
    model = GroupedQueryAttention()
    with pytest.raises(PlanError, match=r"prune\[0\].*structure 'heads' finds no attention heads"):
        graphprune.compile(model, (torch.randn(1, 5, 32),),
                           {"prune": [{"select": "mlp.0", "structure": "heads", "sparsity": 0.5}]})


def test_apply_replays_a_heads_report_on_a_fresh_model() -> None:
    torch.manual_seed(0)
    model = GroupedQueryAttention(llama_repeat=True).eval()
    x = torch.randn(2, 5, 32)
    result = graphprune.compile(model, (x,), {"prune": [{"select": "*", "structure": "heads", "sparsity": 0.5}]})
    replayed = graphprune.apply(model, result.report.to_dict(), (x,))  # the JSON form a saved report has
    with torch.no_grad():
        assert torch.allclose(replayed(x), result.module(x), atol=1e-6)
    assert replayed.get_parameter("q_proj.weight").shape == result.module.get_parameter("q_proj.weight").shape
