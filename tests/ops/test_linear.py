"""Dense-layer family (graphprune/ops/linear.py; declared in conv.py before that split): linear and
embedding, as modules and as functionals over loose weights. An embedding's table columns are removed
exactly, and the linear shape formulas agree with torch."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import compile_and_check
from tests.ops.checks import check_function, check_layer, t

pytestmark = pytest.mark.usefixtures("single_thread")


class Embedding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb, self.fc = nn.Embedding(20, 8), nn.Linear(8, 3)

    def forward(self, idx):
        return self.fc(self.emb(idx)).sum(1)


CASES = {
    "embedding": (Embedding, lambda: torch.randint(0, 20, (2, 5))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_removes_channels_exactly(case):
    cls, make_input = CASES[case]
    torch.manual_seed(0)
    model = cls().eval()
    result = compile_and_check(model, make_input(), sparsity=0.5)
    assert result.report.unknown_ops == []
    assert result.report.params_after < result.report.params_before


LAYERS = [
    (nn.Linear(6, 3), t(6)), (nn.Linear(6, 3), t(2, 5, 6)), (nn.Linear(6, 3, bias=False), t(4, 6)),
    (nn.Linear(6, 3), t(4, 5)),
]


def _layer_id(value: Any) -> str | None:
    return type(value).__name__ if isinstance(value, nn.Module) else None


@pytest.mark.parametrize("module,x", LAYERS, ids=_layer_id)
def test_layer_formula_matches_torch(module, x):
    check_layer(module, x)


FUNCTIONS = [(F.linear, (t(2, 3, 4), t(5, 4), t(5)))]


@pytest.mark.parametrize("key,args", FUNCTIONS, ids=lambda v: getattr(v, "__name__", None) or getattr(v, "name", None))
def test_function_formula_matches_torch(key, args):
    check_function(key, args)
