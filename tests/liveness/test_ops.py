"""Unused-path removal reads each op's ``Liveness`` kind from its channel rule's declaration: the kind
travels with the rule, whatever the rule function is called."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from graphprune.liveness.ops import kind_of
from graphprune.ops.registry import SPECS, Liveness, Method, register
from graphprune.trace import trace

DECLARED = [
    (nn.Conv2d, Liveness.LINEAR), (F.linear, Liveness.LINEAR), (torch.cat, Liveness.MOVEMENT),
    (operator.getitem, Liveness.MOVEMENT), (Method("view"), Liveness.MOVEMENT), (F.pad, Liveness.PAD),
    (nn.BatchNorm2d, Liveness.NORM_MODULE), (F.batch_norm, Liveness.NORM_FUNCTIONAL),
    (F.scaled_dot_product_attention, Liveness.ATTENTION), (torch.matmul, Liveness.CONTRACTION),
    (torch.sum, Liveness.REDUCTION), (F.relu, Liveness.ELEMENTWISE), (operator.add, Liveness.ELEMENTWISE),
    (F.adaptive_avg_pool2d, Liveness.PER_CHANNEL), (Method("size"), Liveness.SHAPE_QUERY),
    (nn.LayerNorm, Liveness.LAYER_NORM), (nn.Embedding, Liveness.GENERIC),
]


@pytest.mark.parametrize(("key", "kind"), DECLARED, ids=[getattr(k, "__name__", None) or str(k) for k, _ in DECLARED])
def test_rules_declare_their_liveness_kind(key: object, kind: Liveness) -> None:
    assert SPECS[key].liveness is kind


def test_every_rule_declares_a_liveness_kind() -> None:
    assert all(isinstance(rule.liveness, Liveness) for rule in SPECS.values())


class RenamedConv(nn.Conv2d):
    """A layer whose rule is the conv rule under another function name."""

    graphprune_leaf = True  # traced as one call, as layers with a rule are


def test_a_renamed_rule_keeps_its_liveness() -> None:
    conv_rule = SPECS[nn.Conv2d]

    @register([RenamedConv], liveness=conv_rule.liveness)
    def some_other_name(ctx):  # noqa: ANN001, ANN202
        return conv_rule.propagate(ctx)

    try:
        model = nn.Sequential(RenamedConv(3, 4, 1))
        gm = trace(model)
        node = next(n for n in gm.graph.nodes if n.op == "call_module")
        assert kind_of(node, gm).zero == "linear"
    finally:
        SPECS.pop(RenamedConv)
